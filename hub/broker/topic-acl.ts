/**
 * Topic ACLs: a device may publish to a topic only if one of its filters matches it, and subscribe
 * to a filter only if one of its filters covers every topic that filter can match.
 * Wildcards per MQTT 3.1.1 section 4.7: '+' one level, '#' this level and all below.
 */

/** True when `topic` (no wildcards) matches `filter`. */
export function topicMatches(filter: string, topic: string): boolean {
  // [MQTT-4.7.2-1] topics starting with $ are not matched by filters starting with a wildcard
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when every topic `requested` can match is also matched by `allowed`. */
export function filterCovers(allowed: string, requested: string): boolean {
  const a = allowed.split('/');
  const r = requested.split('/');
  for (let i = 0; i < a.length; i++) {
    const level = a[i];
    if (level === '#') return true;
    if (i >= r.length) return false;
    const req = r[i];
    if (req === '#') return false;
    if (level === '+') continue;
    if (req === '+' || req !== level) return false;
  }
  return a.length === r.length;
}

export function mayPublish(filters: readonly string[], topic: string): boolean {
  return filters.some((f) => topicMatches(f, topic));
}

export function maySubscribe(filters: readonly string[], requested: string): boolean {
  return filters.some((f) => filterCovers(f, requested));
}

/**
 * A publish check compiled once per session: filters of the common form `a/b/#` become prefix
 * tests, the rest fall back to topicMatches. It runs for every message, so it avoids splitting.
 */
export function compilePublishAcl(filters: readonly string[]): (topic: string) => boolean {
  const prefixes: string[] = [];
  const general: string[] = [];
  for (const f of filters) {
    const body = f.endsWith('/#') ? f.slice(0, -2) : undefined;
    if (body !== undefined && !body.includes('+') && !body.includes('#') && !body.startsWith('$')) prefixes.push(body);
    else general.push(f);
  }
  return (topic) => {
    for (const p of prefixes) {
      // 'a/b/#' matches 'a/b' itself and everything below it [MQTT-4.7.1-2]
      if (topic.startsWith(p) && (topic.length === p.length || topic.charCodeAt(p.length) === 47)) return true;
    }
    return general.length > 0 && mayPublish(general, topic);
  };
}
