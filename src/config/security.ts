import { DEFAULT_LIMITS_OPTIONS as LIMITS_DEFAULTS, type LimitsOptions } from '../limits/limits.js';
import {
  boolean,
  integer,
  list,
  names,
  oneOf,
  optionalBoolean,
  optionalInteger,
  requiredString,
  type SectionField,
  section,
  string,
} from './fields.js';
import { checkListenUrl } from './listen-url.js';

/** Names of the credential checks, in the order they are tried. */
export const AUTH_PROVIDERS = ['password-file', 'jwt', 'http'] as const;
export type AuthProviderName = (typeof AUTH_PROVIDERS)[number];

/** A TLS listener's certificate files (`mqtts:` and `wss:`); empty strings mean unset. */
export interface TlsConfig {
  cert: string;
  key: string;
  ca: string;
  passphrase: string;
  requestCert: boolean;
  requireCert: boolean;
  usernameFrom: 'none' | 'cn' | 'san-dns' | 'san-email' | 'san-uri';
}

/** One listener with settings of its own. */
export interface ListenerConfig {
  url: string;
  tls: TlsConfig;
  proxyProtocol: boolean;
  /** Overrides `auth.allowAnonymous` on this listener. */
  allowAnonymous?: boolean;
  /** The credential checks used on this listener (default: every configured one). */
  auth?: AuthProviderName[];
  /** This listener's own connection caps, on top of the process's `limits`. */
  limits: ListenerLimitsConfig;
}

/** A listener's own connection caps; unset ones are off for the listener. */
export interface ListenerLimitsConfig {
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  connectionRatePerAddress?: number;
  connectionBurstPerAddress?: number;
}

export interface JwtConfig {
  algorithm: 'none' | 'HS256' | 'RS256' | 'ES256';
  secretFile: string;
  publicKeyFile: string;
  jwksFile: string;
  issuer: string;
  audience: string;
  clientIdClaim: string;
  usernameClaim: string;
  aclClaim: string;
  leewaySeconds: number;
}

export interface HttpAuthConfig {
  url: string;
  timeoutMs: number;
  failClosed: boolean;
  cacheSeconds: number;
  denyCacheSeconds: number;
  bearerTokenFile: string;
}

export interface ThrottleConfig {
  freeFailures: number;
  maxDelayMs: number;
}

export interface AuthConfig {
  allowAnonymous: boolean;
  passwordFile: string;
  scram: boolean;
  jwt: JwtConfig;
  http: HttpAuthConfig;
  throttle: ThrottleConfig;
}

export interface AclConfig {
  file: string;
}

const FILE = 'a file path (empty: unset)';
const MAX_INT = Number.MAX_SAFE_INTEGER;

export const TLS = section<TlsConfig>(
  'TLS certificate of mqtts:// and wss:// listeners (a listener may give its own)',
  {
    cert: string('', `Server certificate chain, PEM: ${FILE}`),
    key: string('', `Private key, PEM: ${FILE}`),
    ca: string('', `CA bundle client certificates must chain to, PEM: ${FILE}`),
    passphrase: string('', 'Passphrase of the private key'),
    requestCert: boolean(false, 'Ask clients for a certificate (mutual TLS)'),
    requireCert: boolean(true, 'With requestCert: refuse clients without a valid certificate'),
    usernameFrom: oneOf(
      ['none', 'cn', 'san-dns', 'san-email', 'san-uri'],
      'none',
      'Take the username from the verified client certificate (its CN or a SAN); no password is then needed',
    ),
  },
);

export const LISTENERS = list<ListenerConfig>(
  'Listeners with settings of their own (in addition to `listen`)',
  section<ListenerConfig>('One listener', {
    url: requiredString('a listener URL such as mqtts://0.0.0.0:8883', checkListenUrl),
    tls: TLS,
    proxyProtocol: boolean(false, 'Expect a PROXY protocol v1/v2 header (behind a load balancer)'),
    allowAnonymous: optionalBoolean('Overrides auth.allowAnonymous on this listener'),
    auth: names(
      AUTH_PROVIDERS,
      'Credential checks used on this listener, in order (default: all configured)',
    ),
    limits: section<ListenerLimitsConfig>("This listener's own caps, on top of the process's limits", {
      maxConnections: optionalInteger(1, MAX_INT, 'Most connections open at once on this listener'),
      maxConnectionsPerAddress: optionalInteger(
        1,
        MAX_INT,
        'Most connections from one address on this listener',
      ),
      connectionRatePerAddress: optionalInteger(1, MAX_INT, 'New connections a second from one address'),
      connectionBurstPerAddress: optionalInteger(1, MAX_INT, 'New connections from one address in a burst'),
    }),
  }),
);

export const AUTH = section<AuthConfig>('Authentication', {
  allowAnonymous: boolean(false, 'Let clients in without credentials'),
  passwordFile: string('', `Password file made with \`cicada passwd\`: ${FILE}`),
  scram: boolean(true, 'Offer SCRAM-SHA-256 (MQTT 5 enhanced authentication) for password-file users'),
  jwt: section<JwtConfig>('JSON Web Tokens given as the CONNECT password', {
    algorithm: oneOf(['none', 'HS256', 'RS256', 'ES256'], 'none', 'Signature algorithm; none: tokens off'),
    secretFile: string('', `HS256 shared secret: ${FILE}`),
    publicKeyFile: string('', `RS256/ES256 public key, PEM: ${FILE}`),
    jwksFile: string('', `RS256/ES256 keys as a JWKS document (chosen by kid): ${FILE}`),
    issuer: string('', 'Required iss claim (empty: not checked)'),
    audience: string('', 'Required aud claim (empty: not checked)'),
    clientIdClaim: string('', 'Claim that must equal the client id (empty: not bound)'),
    usernameClaim: string('sub', 'Claim naming the user for ACLs'),
    aclClaim: string('acl', 'Claim holding {"publish": [filters], "subscribe": [filters]}'),
    leewaySeconds: integer(0, 3600, 30, 'Clock skew tolerated on exp and nbf, in seconds'),
  }),
  http: section<HttpAuthConfig>('An external HTTP service that decides logins', {
    url: string('', 'URL receiving a POST per login (empty: off)'),
    timeoutMs: integer(1, 60_000, 3000, 'Milliseconds to wait for an answer'),
    failClosed: boolean(
      true,
      'Refuse logins when the service fails or times out (false: try the next check)',
    ),
    cacheSeconds: integer(0, 86_400, 60, 'How long an allow answer is reused'),
    denyCacheSeconds: integer(0, 86_400, 5, 'How long a deny answer is reused'),
    bearerTokenFile: string('', `Token sent as Authorization: Bearer to the service: ${FILE}`),
  }),
  throttle: section<ThrottleConfig>('Slowing failed logins per source address', {
    freeFailures: integer(0, 1_000_000, 5, 'Failures allowed before answers are delayed'),
    maxDelayMs: integer(0, 600_000, 10_000, 'Longest delay of a refusal, in milliseconds'),
  }),
});

export const ACL = section<AclConfig>('Topic access control', {
  file: string('', `ACL file (Mosquitto syntax, see docs/acl.md); deny by default once set: ${FILE}`),
});

/** Schemes that need the listener's `tls` certificate and key. */
export function needsTls(url: string): boolean {
  const scheme = new URL(url).protocol;
  return (
    scheme === 'mqtts:' ||
    scheme === 'ssl:' ||
    scheme === 'tls:' ||
    scheme === 'stomps:' ||
    scheme === 'wss:' ||
    scheme === 'https:'
  );
}

export type { SectionField };

/** Process protection: connection admission and the memory high-water mark. */
export const LIMITS = section<LimitsOptions>('Process protection (0 switches a cap off)', {
  maxConnections: integer(0, MAX_INT, LIMITS_DEFAULTS.maxConnections, 'Most connections open at once'),
  maxConnectionsPerAddress: integer(
    0,
    MAX_INT,
    LIMITS_DEFAULTS.maxConnectionsPerAddress,
    'Most connections open at once from one source address',
  ),
  connectionRatePerAddress: integer(
    0,
    MAX_INT,
    LIMITS_DEFAULTS.connectionRatePerAddress,
    'New connections a second from one source address, sustained (beyond: closed at once)',
  ),
  connectionBurstPerAddress: integer(
    1,
    MAX_INT,
    LIMITS_DEFAULTS.connectionBurstPerAddress,
    'New connections from one source address accepted in a burst',
  ),
  memoryHighWaterMark: integer(
    -1,
    MAX_INT,
    LIMITS_DEFAULTS.memoryHighWaterMark,
    'Resident memory in bytes above which load is shed (0: 80% of the memory limit; -1: off)',
  ),
  memoryLowWaterMark: integer(
    0,
    MAX_INT,
    LIMITS_DEFAULTS.memoryLowWaterMark,
    'Resident memory in bytes below which shedding stops (0: 85% of the high-water mark)',
  ),
  memorySampleInterval: integer(
    10,
    3_600_000,
    LIMITS_DEFAULTS.memorySampleInterval,
    'Milliseconds between memory samples',
  ),
});
