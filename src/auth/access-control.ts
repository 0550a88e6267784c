import type {
  AuthConversation,
  AuthenticationRequest,
  AuthenticationResult,
  BrokerHooks,
  ClientInfo,
  ConnectRefusal,
} from '../broker/hooks.js';
import type { SubscriptionOptions } from '../broker/message.js';
import type {
  AclSubject,
  Authorizer,
  AuthProvider,
  Identity,
  ProviderDecision,
  SubscribeDecision,
} from './types.js';

/** How failed logins are slowed, per source address (see `LoginThrottle`). */
export interface FailureThrottle {
  /** Milliseconds to hold back the next refusal for this address. */
  delayFor(address: string): number;
  recordFailure(address: string): void;
}

/** A refused login, as the log and metrics see it: never the password or token. */
export interface AuthFailure {
  readonly clientId: string;
  readonly username?: string;
  readonly remoteAddress?: string;
  readonly listener?: string;
  /** Which check refused it (`anonymous`, a provider name, `no-provider`). */
  readonly by: string;
  readonly reason: string;
}

/** What one listener lets in. */
export interface ListenerAccess {
  /** Clients without username and password. */
  readonly allowAnonymous?: boolean;
  /** Names of the providers tried on this listener, in order (default: all). */
  readonly providers?: readonly string[];
  /** Enhanced-authentication methods offered on this listener (default: all). */
  readonly methods?: readonly string[];
}

export interface AccessControlOptions {
  /** Tried in order; the first that does not abstain decides. */
  readonly providers: readonly AuthProvider[];
  /** Topic permissions; absent means every authenticated client may publish and subscribe anywhere. */
  readonly authorizer?: Authorizer;
  /** Clients without credentials. Default false: anonymous access must be switched on. */
  readonly allowAnonymous?: boolean;
  /** Per-listener overrides, keyed by listener URL. */
  readonly listeners?: ReadonlyMap<string, ListenerAccess>;
  readonly throttle?: FailureThrottle;
  /**
   * Work done before refusing credentials no provider knows, so that an unknown user takes as
   * long to refuse as a known user's wrong password (a dummy hash): timing must not tell
   * which usernames exist.
   */
  readonly unknownCredentials?: (credentials: AuthenticationRequest) => Promise<void>;
  /** Enhanced authentication methods offered (MQTT 5 AUTH), by name, e.g. `SCRAM-SHA-256`. */
  readonly methods?: ReadonlyMap<string, (client: ClientInfo) => AuthConversation>;
  onFailure?(failure: AuthFailure): void;
  /** A provider failed unexpectedly (its error becomes a refusal, never a crash). */
  onError?(error: unknown): void;
}

/**
 * Authentication and authorization as broker hooks: credentials go through the providers
 * (password file, JWT, HTTP hook), refusals are slowed per address, and topic access goes
 * through the authorizer with what authentication learned about the client.
 */
export class AccessControl {
  private readonly identities = new WeakMap<ClientInfo, Identity>();

  constructor(private readonly options: AccessControlOptions) {}

  /** The hooks to give the broker. */
  hooks(): Required<
    Pick<BrokerHooks, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'enhancedAuthentication'>
  > {
    return {
      authenticate: (request) => this.authenticate(request),
      authorizePublish: (client, message) => this.canPublish(client, message.topic),
      authorizeSubscribe: (client, filter, options) => this.canSubscribe(client, filter, options),
      enhancedAuthentication: (method, client) => this.startConversation(method, client),
    };
  }

  /** How many credential providers are configured. */
  get providerCount(): number {
    return this.options.providers.length;
  }

  /** What authentication learned about a connected client (undefined for anonymous clients). */
  identityOf(client: ClientInfo): Identity | undefined {
    return this.identities.get(client);
  }

  /** Decides a CONNECT; an already-verified certificate or enhanced authentication counts as credentials. */
  async authenticate(request: AuthenticationRequest): Promise<AuthenticationResult> {
    const { client } = request;
    const enhanced = request.enhancedAuthentication;
    if (enhanced !== undefined) {
      return this.accept(client, {
        provider: enhanced.method,
        username: enhanced.username ?? request.username,
      });
    }
    const certificate = client.certificate;
    if (certificate?.username !== undefined && certificate.authorized) {
      // The listener takes the username from a certificate TLS has verified (mutual TLS).
      return this.accept(client, { provider: 'certificate', username: certificate.username });
    }
    const access = this.listenerAccess(client);
    if (request.username === undefined && request.password === undefined) {
      if (access?.allowAnonymous ?? this.options.allowAnonymous ?? false) return true;
      return this.refuse(request, 'anonymous', 'anonymous access is not allowed', 'not-authorized');
    }
    const names = access?.providers;
    for (const provider of this.options.providers) {
      if (names !== undefined && !names.includes(provider.name)) continue;
      let decision: ProviderDecision;
      try {
        decision = await provider.check(request);
      } catch (error) {
        this.options.onError?.(error);
        return this.refuse(
          request,
          provider.name,
          'authentication failed unexpectedly',
          'server-unavailable',
        );
      }
      if (decision.decision === 'allow') return this.accept(client, decision.identity);
      if (decision.decision === 'deny')
        return this.refuse(request, provider.name, decision.reason, decision.refusal);
    }
    await this.options.unknownCredentials?.(request).catch((error: unknown) => this.options.onError?.(error));
    return this.refuse(request, 'no-provider', 'no provider knows these credentials', 'bad-credentials');
  }

  canPublish(client: ClientInfo, topic: string): boolean {
    const { authorizer } = this.options;
    if (authorizer === undefined) return true;
    const subject = this.subject(client);
    return subject.identity?.superuser === true || authorizer.canPublish(subject, topic);
  }

  canSubscribe(client: ClientInfo, filter: string, _options?: SubscriptionOptions): SubscribeDecision {
    const { authorizer } = this.options;
    if (authorizer === undefined) return true;
    const subject = this.subject(client);
    return subject.identity?.superuser === true || authorizer.canSubscribe(subject, filter);
  }

  /** Re-reads every file the providers and the authorizer loaded; the first failure is thrown after all ran. */
  async reload(): Promise<void> {
    const results = await Promise.allSettled([
      ...this.options.providers.map((p) => p.reload?.()),
      this.options.authorizer?.reload?.(),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  close(): void {
    for (const provider of this.options.providers) provider.close?.();
    this.options.authorizer?.close?.();
  }

  /** Starts an enhanced-authentication exchange whose failure is logged and slowed like any refused login. */
  private startConversation(method: string, client: ClientInfo): AuthConversation | undefined {
    // A listener limited to some providers must not let their users in by another way.
    const offered = this.listenerAccess(client)?.methods;
    if (offered !== undefined && !offered.includes(method)) return undefined;
    const conversation = this.options.methods?.get(method)?.(client);
    if (conversation === undefined) return undefined;
    return {
      step: async (data) => {
        const answer = await conversation.step(data);
        if (answer.status !== 'failure') return answer;
        const request = {
          clientId: client.clientId,
          client,
          ...(client.username === undefined ? {} : { username: client.username }),
        };
        await this.refuse(request, method, answer.reason, answer.refusal);
        return answer;
      },
    };
  }

  private listenerAccess(client: ClientInfo): ListenerAccess | undefined {
    return client.listener === undefined ? undefined : this.options.listeners?.get(client.listener);
  }

  private subject(client: ClientInfo): AclSubject {
    const identity = this.identities.get(client);
    const username = identity?.username ?? client.username;
    return {
      clientId: client.clientId,
      ...(username === undefined ? {} : { username }),
      ...(identity === undefined ? {} : { identity }),
    };
  }

  private accept(client: ClientInfo, identity: Identity): true {
    // A success does not clear the address's failures: one valid account (or an honest client
    // behind the same NAT) must not reset the slowing of guesses at other accounts.
    this.identities.set(client, identity);
    return true;
  }

  private async refuse(
    request: AuthenticationRequest,
    by: string,
    reason: string,
    refusal: ConnectRefusal,
  ): Promise<AuthenticationResult> {
    const { client } = request;
    this.options.onFailure?.({
      clientId: request.clientId,
      ...(request.username === undefined ? {} : { username: request.username }),
      ...(client.remoteAddress === undefined ? {} : { remoteAddress: client.remoteAddress }),
      ...(client.listener === undefined ? {} : { listener: client.listener }),
      by,
      reason,
    });
    const { throttle } = this.options;
    const address = client.remoteAddress;
    if (throttle !== undefined && address !== undefined) {
      // Slow the answer, not the broker: other clients are served meanwhile.
      const delay = throttle.delayFor(address);
      throttle.recordFailure(address);
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    }
    return { refuse: refusal };
  }
}
