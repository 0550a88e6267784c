import type { MqttClient, Packet } from 'mqtt';
import type { ISubackPacket } from 'mqtt-packet';
import { within } from './mqtt-client.js';

/**
 * The reason codes MQTT.js clients get back, as numbers to compare: SUBACK codes and PUBACK/PUBREC
 * codes, refusals included (MQTT.js reports those as errors).
 */

/** The SUBACK codes for `filters`, as sent (MQTT.js turns any failure into an error). */
export async function subackCodes(c: MqttClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  const suback = new Promise<number[]>((resolve) => {
    const onPacket = (packet: Packet): void => {
      if (packet.cmd !== 'suback') return;
      c.off('packetreceive', onPacket);
      resolve((packet as ISubackPacket).granted as number[]);
    };
    c.on('packetreceive', onPacket);
  });
  c.subscribe(filters, { qos }, () => {});
  return within(suback, `SUBACK for ${filters.join(', ')}`);
}

/** The reason code MQTT.js reports for a publish: 0 when acknowledged positively. */
export async function publishCode(
  c: MqttClient,
  topic: string,
  qos: 1 | 2,
  options: { retain?: boolean } = {},
): Promise<number> {
  try {
    await c.publishAsync(topic, `to ${topic}`, { qos, ...options });
    return 0;
  } catch (error) {
    return (error as { code?: number }).code ?? -1;
  }
}
