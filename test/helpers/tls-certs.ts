/**
 * Makes a throwaway PKI for TLS tests with the `openssl` CLI: a CA, a server certificate for 127.0.0.1 and
 * localhost, and a client certificate. EC P-256 keys: both mosquitto 2.0.11 and Node accept them, and they
 * are quick to generate (tens of milliseconds).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Certificates {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ecKey(file: string, cwd: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], cwd);
}

/** Signs `name`.csr with the CA into `name`.crt, with the given X.509 v3 extensions. */
function sign(name: string, extensions: string[], dir: string): void {
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions.join('\n') + '\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '30',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

/** Writes ca.crt, server.crt/.key and client.crt/.key into `dir`; returns their paths. */
export function makeCertificates(dir: string, clientName = 'storehub-test'): Certificates {
  mkdirSync(dir, { recursive: true });
  const paths: Certificates = {
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
  };
  ecKey('ca.key', dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '30',
      '-subj',
      '/CN=storehub test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      'ca.crt',
    ],
    dir,
  );

  ecKey('server.key', dir);
  openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-out', 'server.csr'], dir);
  // Clients verify the SAN, not the CN: 127.0.0.1 for the loopback listeners, localhost for humans.
  sign(
    'server',
    ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    dir,
  );

  ecKey('client.key', dir);
  openssl(['req', '-new', '-key', 'client.key', '-subj', `/CN=${clientName}`, '-out', 'client.csr'], dir);
  sign('client', ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'], dir);
  return paths;
}
