import fc from 'fast-check';
import t from 'tap';
import { compilePublishAcl, filterCovers, mayPublish, maySubscribe, topicMatches } from '../hub/broker/topic-acl.js';

t.test('topic filters per MQTT 3.1.1 section 4.7', async (t) => {
  t.ok(topicMatches('devices/r1/#', 'devices/r1'), '# matches the parent level');
  t.ok(topicMatches('devices/r1/#', 'devices/r1/a/b'));
  t.notOk(topicMatches('devices/r1/#', 'devices/r10/a'));
  t.ok(topicMatches('uagv/v2/+/r1/state', 'uagv/v2/ACME/r1/state'));
  t.notOk(topicMatches('uagv/v2/+/r1/state', 'uagv/v2/ACME/r1/state/x'));
  t.notOk(topicMatches('#', '$SYS/broker'), 'wildcards do not match $ topics');
  t.ok(filterCovers('devices/r1/#', 'devices/r1/+/cmd'));
  t.notOk(filterCovers('devices/r1/+', 'devices/r1/#'));
  t.notOk(filterCovers('devices/r1/#', 'devices/+/cmd'));
  t.ok(maySubscribe(['a/+/c'], 'a/b/c'));
  t.notOk(maySubscribe(['a/+/c'], 'a/#'));
});

t.test('the compiled publish check agrees with the general matcher', async (t) => {
  const level = fc.constantFrom('devices', 'r1', 'r10', 'zebra', 'data', '+', 'x');
  const filter = fc.tuple(fc.array(level, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([ls, hash]) => (hash ? [...ls, '#'] : ls).join('/'));
  const topic = fc.array(fc.constantFrom('devices', 'r1', 'r10', 'zebra', 'data', 'x', ''), { minLength: 1, maxLength: 5 }).map((ls) => ls.join('/'));
  fc.assert(
    fc.property(fc.array(filter, { minLength: 1, maxLength: 3 }), topic, (filters, tp) => compilePublishAcl(filters)(tp) === mayPublish(filters, tp)),
    { numRuns: 5000 },
  );
  t.pass('5000 random filter sets agree');
});
