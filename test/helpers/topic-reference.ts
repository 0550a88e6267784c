/**
 * The topic matching rules of MQTT 4.7 written as plainly as possible, independent of the
 * code under test: the reference that property tests compare against.
 */
export function refMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // MQTT-4.7.2-1: wildcards as first level do not match topic names starting with '$'.
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    // '#' matches any number of remaining levels, including none (the parent level).
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
