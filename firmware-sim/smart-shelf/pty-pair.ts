/**
 * Two pseudo-terminals joined back to back by socat (`socat -d -d pty,raw,echo=0 pty,raw,echo=0`):
 * what is written to one path is read from the other, like the two ends of an RS-485 cable. socat
 * prints each path on stderr as "N PTY is /dev/pts/N". A pty keeps no serial timing, so frames may
 * arrive split or glued (FACTS.md).
 */
import { spawn } from 'node:child_process';

export interface PtyPair {
  a: string;
  b: string;
  /** Stops socat (both paths vanish: an open port on either end sees a disconnect). */
  close(): Promise<void>;
}

/**
 * `linkA` makes socat also create a symlink to end A at that path (socat's `link=` option), so a
 * process configured with a fixed port path (a running hub) finds the simulated line there.
 */
export function createPtyPair(timeoutMs = 10_000, linkA?: string): Promise<PtyPair> {
  const endA = linkA ? `pty,raw,echo=0,link=${linkA}` : 'pty,raw,echo=0';
  const child = spawn('socat', ['-d', '-d', endA, 'pty,raw,echo=0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise<PtyPair>((resolve, reject) => {
    let text = '';
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`socat printed no pty paths within ${timeoutMs} ms: ${text.trim()}`)), timeoutMs);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void close().then(() => reject(err));
    };
    child.once('error', (err) => fail(new Error(`cannot run socat (is it installed?): ${err.message}`)));
    child.once('exit', (code) => fail(new Error(`socat exited (${code}) before printing pty paths: ${text.trim()}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      text += chunk;
      const paths = [...text.matchAll(/PTY is (\S+)/g)].map((m) => m[1]!);
      // the data transfer loop starts after both ptys exist; only then is the pair usable
      if (!settled && paths.length >= 2 && text.includes('starting data transfer loop')) {
        settled = true;
        clearTimeout(timer);
        child.stderr.removeAllListeners('data');
        child.stderr.resume(); // keep draining so socat never blocks on a full stderr pipe
        resolve({ a: paths[0]!, b: paths[1]!, close });
      }
    });
  });
}
