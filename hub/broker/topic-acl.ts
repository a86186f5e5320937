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

/** A device id is also its MQTT username and client id, and it names its topics: no wildcards or '/'. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Why `filter` is not a valid MQTT 3.1.1 topic filter (section 4.7.1), or undefined. */
export function filterSyntaxProblem(filter: string): string | undefined {
  if (filter.length === 0 || filter.length > 1024) return 'must be 1 to 1024 characters';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return "'#' must be a whole level and the last one";
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
  }
  return undefined;
}

/** True when some topic matches both filters. */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#' || q === '#') return true;
    if (p === undefined || q === undefined) return p === q;
    if (p !== '+' && q !== '+' && p !== q) return false;
  }
}

/**
 * Why `filters` cannot be the namespace of a device, or an empty list. A namespace starts with a
 * literal level (a filter such as '#' or '+/x/#' would reach into every device's topics), is not a
 * '$' system topic, and shares no topic with another device's namespace: devices' namespaces are
 * disjoint, so no device can read or write another's topics.
 */
export function namespaceProblems(filters: readonly string[], others: readonly { deviceId: string; topics: readonly string[] }[]): string[] {
  const problems: string[] = [];
  if (filters.length === 0) problems.push('a device needs at least one topic filter');
  for (const f of filters) {
    const syntax = filterSyntaxProblem(f);
    if (syntax) {
      problems.push(`topic filter ${JSON.stringify(f)}: ${syntax}`);
      continue;
    }
    const first = f.split('/')[0] as string;
    if (first === '#' || first === '+' || first === '')
      problems.push(`topic filter ${JSON.stringify(f)}: must start with a literal level, not a wildcard or '/'`);
    else if (f.startsWith('$')) problems.push(`topic filter ${JSON.stringify(f)}: '$' topics belong to the broker`);
    else
      for (const o of others)
        for (const g of o.topics)
          if (filtersOverlap(f, g)) problems.push(`topic filter ${JSON.stringify(f)} overlaps ${JSON.stringify(g)} of device ${o.deviceId}`);
  }
  return problems;
}
