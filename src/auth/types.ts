import type { ClientInfo, ConnectRefusal } from '../broker/hooks.js';

/** Topic permissions granted by a credential itself (e.g. a token's ACL claims). */
export interface AclGrant {
  /** Topic filters the client may publish to (a topic matching one is allowed). */
  readonly publish: readonly string[];
  /** Topic filters the client may subscribe to and receive from. */
  readonly subscribe: readonly string[];
}

/** Who a client turned out to be once a provider accepted it. */
export interface Identity {
  /** The provider that accepted it, e.g. `password-file`, `jwt`, `http`, `certificate`. */
  readonly provider: string;
  /** The username the client is known by for ACLs (may differ from the CONNECT username). */
  readonly username?: string;
  /** Permissions carried by the credential; when present they replace the ACL file's for this client. */
  readonly acl?: AclGrant;
  /** Bypasses the ACL (an administrative account). */
  readonly superuser?: boolean;
}

/** What a client offered at CONNECT. */
export interface Credentials {
  readonly clientId: string;
  readonly username?: string;
  readonly password?: Buffer;
  readonly client: ClientInfo;
}

/**
 * A provider's answer: accept with an identity, refuse with a reason (never containing the
 * secret), or abstain so the next provider decides (e.g. the password file has no such user).
 */
export type ProviderDecision =
  | { readonly decision: 'allow'; readonly identity: Identity }
  | { readonly decision: 'deny'; readonly refusal: ConnectRefusal; readonly reason: string }
  | { readonly decision: 'abstain' };

/** One way of checking credentials; providers are tried in order, the first non-abstaining decides. */
export interface AuthProvider {
  readonly name: string;
  check(credentials: Credentials): Promise<ProviderDecision>;
  /** Re-reads the files it loaded (on SIGHUP or when they change). */
  reload?(): Promise<void>;
  /** Releases file watchers and timers. */
  close?(): void;
}

/** Whom an authorization decision is about. */
export interface AclSubject {
  readonly clientId: string;
  readonly username?: string;
  /** What authentication said about the client (absent for anonymous clients). */
  readonly identity?: Identity;
}

/**
 * A subscribe decision: refuse, allow everything the filter matches, or allow it with a
 * per-message check for filters that only partly lie within what the client may read.
 */
export type SubscribeDecision = boolean | ((topic: string) => boolean);

/** Topic-level permissions (the ACL file, or a credential's own grant). */
export interface Authorizer {
  canPublish(subject: AclSubject, topic: string): boolean;
  canSubscribe(subject: AclSubject, filter: string): SubscribeDecision;
  /** Re-reads the files it loaded. */
  reload?(): Promise<void>;
  close?(): void;
}
