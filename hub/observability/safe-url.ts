/**
 * A URL as it may appear in a log line: without user:password and without the query string, which
 * is where credentials ride in URLs (mqtt://user:secret@host, pre-signed download links).
 */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    const query = u.search !== '' ? '?…' : '';
    u.search = '';
    u.hash = '';
    return `${u.toString()}${query}`;
  } catch {
    return '(unparsable URL)';
  }
}
