/**
 * Topic aliases the broker assigns towards one client (MQTT 3.3.2.3.4): the first topics
 * sent get aliases until the client's Topic Alias Maximum is reached; later topics go in
 * full. First-come keeps every alias stable for the connection's life, so a long-lived
 * subscriber's hot topics, which are typically seen first, cost two bytes each.
 */
export class OutboundAliases {
  private readonly aliases = new Map<string, number>();

  constructor(private readonly maximum: number) {}

  /**
   * The alias for `topic`: positive when the client already holds it (send an empty topic
   * name), negative when newly assigned (send the topic and the alias), 0 for none.
   */
  aliasFor(topic: string): number {
    if (this.maximum === 0) return 0;
    const alias = this.aliases.get(topic);
    if (alias !== undefined) return alias;
    if (this.aliases.size >= this.maximum) return 0;
    const assigned = this.aliases.size + 1;
    this.aliases.set(topic, assigned);
    return -assigned;
  }
}
