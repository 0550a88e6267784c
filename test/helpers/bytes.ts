/**
 * Turns an annotated hex listing into bytes: everything after `#` on a line is a comment,
 * whitespace is ignored, and `"text"` inserts the UTF-8 bytes of text. Lets test vectors
 * say what each byte means.
 */
export function bytes(listing: string): Buffer {
  const parts: Buffer[] = [];
  for (const line of listing.split('\n')) {
    for (const token of line.match(/"[^"]*"|#.*$|[0-9a-fA-F]+/g) ?? []) {
      if (token.startsWith('#')) break;
      if (token.startsWith('"')) {
        parts.push(Buffer.from(token.slice(1, -1), 'utf8'));
      } else {
        if (token.length % 2 !== 0) throw new Error(`odd hex token '${token}' in test vector`);
        parts.push(Buffer.from(token, 'hex'));
      }
    }
  }
  return Buffer.concat(parts);
}
