import t from 'tap';
import { safeUrl } from '../hub/observability/safe-url.js';

t.test('URLs are logged without credentials or query strings', async (t) => {
  t.equal(safeUrl('mqtts://hub-7:s3cret@cloud.example:8883/mqtt'), 'mqtts://cloud.example:8883/mqtt');
  t.equal(safeUrl('https://cdn.example/fw/r700-8.1.bin?X-Amz-Signature=abc&X-Amz-Credential=key'), 'https://cdn.example/fw/r700-8.1.bin?…');
  t.equal(safeUrl('mqtt://127.0.0.1:1883'), 'mqtt://127.0.0.1:1883');
  t.equal(safeUrl('not a url'), '(unparsable URL)');
  for (const url of ['mqtts://hub-7:s3cret@cloud.example', 'https://x.example/a?token=s3cret']) t.notMatch(safeUrl(url), /s3cret/);
});
