/** What is wrong with a topic name or filter under the configured limits. */
export type TopicFault = 'too-long' | 'too-deep';

/**
 * Checks a topic name or filter against a length limit (UTF-8 bytes) and a depth limit
 * (levels, i.e. `/` separators plus one). Cheap for the common case: a string whose UTF-16
 * length is small enough cannot be over either limit, so it is not scanned.
 */
export function topicFault(topic: string, maxLength: number, maxLevels: number): TopicFault | undefined {
  const units = topic.length;
  // One UTF-16 unit is at most 3 UTF-8 bytes: only a long string needs measuring.
  if (units * 3 > maxLength && Buffer.byteLength(topic) > maxLength) return 'too-long';
  // n units hold at most n separators, so n + 1 levels.
  if (units >= maxLevels) {
    let levels = 1;
    for (let i = topic.indexOf('/'); i !== -1; i = topic.indexOf('/', i + 1)) {
      if (++levels > maxLevels) return 'too-deep';
    }
  }
  return undefined;
}

/** Describes a fault for a reason string or log. */
export function describeTopicFault(fault: TopicFault, maxLength: number, maxLevels: number): string {
  return fault === 'too-long'
    ? `topic longer than ${maxLength} bytes`
    : `topic deeper than ${maxLevels} levels`;
}
