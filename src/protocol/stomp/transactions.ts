import type { Message } from '../../broker/message.js';
import { queueNameOf } from '../../broker/queues.js';
import { getHeader, type StompFrame } from '../../codec/stomp/index.js';
import type { StompConnection } from './connection.js';
import { missingHeader, StompViolation } from './errors.js';
import { applyAck } from './handle-ack.js';
import { publish, queueRefusalMessage } from './handle-send.js';

/** What a transaction holds until COMMIT: authorized messages and acknowledgements, in order. */
export type TransactionAction =
  | { readonly kind: 'send'; readonly message: Message; readonly destination: string }
  | { readonly kind: 'ack' | 'nack'; readonly messageId: string };

/**
 * A connection's open transactions (STOMP 1.2 "BEGIN"): SEND, ACK and NACK frames naming one
 * are held and take effect together at COMMIT, or never (ABORT, or the connection ends).
 * What they hold is bounded per connection: a client cannot make the broker buffer without end.
 */
export class Transactions {
  private readonly open = new Map<string, TransactionAction[]>();
  private held = 0;

  constructor(private readonly maxFrames: number) {}

  begin(name: string): void {
    if (this.open.has(name)) throw new StompViolation(`transaction '${name}' is already open`);
    this.open.set(name, []);
  }

  add(name: string, action: TransactionAction): void {
    const actions = this.actions(name);
    if (this.held >= this.maxFrames)
      throw new StompViolation(`open transactions hold more than ${this.maxFrames} frames`);
    actions.push(action);
    this.held++;
  }

  /** Throws unless `name` is an open transaction. */
  assertOpen(name: string): void {
    this.actions(name);
  }

  /** Ends a transaction (COMMIT or ABORT) and returns what it held. */
  end(name: string): TransactionAction[] {
    const actions = this.actions(name);
    this.open.delete(name);
    this.held -= actions.length;
    return actions;
  }

  /** Aborts every open transaction (the connection ended). */
  clear(): void {
    this.open.clear();
    this.held = 0;
  }

  private actions(name: string): TransactionAction[] {
    const actions = this.open.get(name);
    if (actions === undefined) throw new StompViolation(`no open transaction '${name}'`);
    return actions;
  }
}

function transactionName(frame: StompFrame): string {
  const name = getHeader(frame, 'transaction');
  if (name === undefined || name === '') throw missingHeader(frame.command, 'transaction');
  return name;
}

export function handleBegin(conn: StompConnection, frame: StompFrame): void {
  conn.transactions.begin(transactionName(frame));
  conn.receipt(frame);
}

/**
 * COMMIT: the held messages are published in order (authorized when they were sent) and the
 * acknowledgements applied; the receipt waits until every message is durable. Queues are
 * checked for room first: a COMMIT a full queue would refuse in part is refused whole.
 */
export function handleCommit(conn: StompConnection, frame: StompFrame): void {
  const actions = conn.transactions.end(transactionName(frame));
  assertQueuesTake(conn, actions);
  const writes: Promise<void>[] = [];
  for (const action of actions) {
    if (action.kind === 'send') {
      const persisted = publish(conn, action.message, action.destination);
      if (persisted !== undefined) writes.push(persisted);
    } else {
      applyAck(conn, action.messageId, action.kind === 'nack');
    }
  }
  const durable =
    writes.length === 0 ? undefined : writes.length === 1 ? writes[0] : Promise.all(writes).then(() => {});
  conn.receipt(frame, durable);
}

/** Throws, before anything is published, unless every queue the actions send to has room for them. */
function assertQueuesTake(conn: StompConnection, actions: readonly TransactionAction[]): void {
  let wanted: Map<string, { count: number; destination: string }> | undefined;
  for (const action of actions) {
    if (action.kind !== 'send') continue;
    const name = queueNameOf(action.message.topic);
    if (name === undefined) continue;
    wanted ??= new Map();
    const entry = wanted.get(name);
    if (entry === undefined) wanted.set(name, { count: 1, destination: action.destination });
    else entry.count++;
  }
  if (wanted === undefined) return;
  for (const [name, { count, destination }] of wanted)
    if (!conn.broker.queues.accepts(name))
      throw new StompViolation(queueRefusalMessage('too-many-queues', destination));
    else if (conn.broker.queues.room(name) < count)
      throw new StompViolation(`${destination} is full: the transaction was not committed`);
}

export function handleAbort(conn: StompConnection, frame: StompFrame): void {
  conn.transactions.end(transactionName(frame));
  conn.receipt(frame);
}
