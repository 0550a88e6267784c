import type { Message } from '../../broker/message.js';
import { getHeader, type StompFrame } from '../../codec/stomp/index.js';
import type { StompConnection } from './connection.js';
import { missingHeader, StompViolation } from './errors.js';
import { applyAck } from './handle-ack.js';
import { publish } from './handle-send.js';

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
 * acknowledgements applied; the receipt waits until every message is durable.
 */
export function handleCommit(conn: StompConnection, frame: StompFrame): void {
  const actions = conn.transactions.end(transactionName(frame));
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

export function handleAbort(conn: StompConnection, frame: StompFrame): void {
  conn.transactions.end(transactionName(frame));
  conn.receipt(frame);
}
