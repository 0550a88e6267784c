/** URL schemes a listener may use (the transports `createBroker` knows). */
export const LISTENER_SCHEMES: readonly string[] = [
  'mqtt:',
  'tcp:',
  'mqtts:',
  'ssl:',
  'tls:',
  'ws:',
  'wss:',
  // STOMP over TCP and TLS (over WebSocket it is ws(s)://HOST:PORT/stomp).
  'stomp:',
  'stomps:',
  // The HTTP API (admin, push, SSE, metrics, dashboard); it may share a port with ws:.
  'http:',
  'https:',
];

/** Why `text` is not a listener URL (what was expected), or undefined if it is one. */
export function checkListenUrl(text: string): string | undefined {
  const names = LISTENER_SCHEMES.map((s) => s.slice(0, -1));
  const schemes = `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
  const expected = `a URL with scheme ${schemes}, such as mqtt://0.0.0.0:1883`;
  if (!URL.canParse(text)) return expected;
  const url = new URL(text);
  if (!LISTENER_SCHEMES.includes(url.protocol) || url.hostname === '') return expected;
  return undefined;
}
