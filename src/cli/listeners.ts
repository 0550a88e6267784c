import type { CicadaConfig, TlsConfig } from '../config/schema.js';
import { needsTls } from '../config/security.js';
import type { CicadaListenOptions } from '../server.js';
import type { TlsListenOptions } from '../transport/transport.js';

/** One listener to open: its URL and its transport settings. */
export interface ListenerSpec {
  readonly url: string;
  readonly options: CicadaListenOptions;
}

/** Why the configured listeners cannot be opened (one line), e.g. a TLS URL without a certificate. */
export class ListenerConfigError extends Error {
  override readonly name = 'ListenerConfigError';
}

/**
 * The listeners to open: every `listen` URL with the shared `tls` settings, then every
 * `listeners` entry with its own (falling back to the shared certificate when it names none).
 */
export function listenerSpecs(config: CicadaConfig): ListenerSpec[] {
  const specs: ListenerSpec[] = config.listen.map((url) => ({
    url,
    options: needsTls(url) ? { tls: tlsOptions(url, config.tls, 'tls', true) } : {},
  }));
  config.listeners.forEach((listener, index) => {
    const own = listener.tls.cert !== '' || listener.tls.key !== '';
    const tls = own ? listener.tls : { ...config.tls, ...pickSet(listener.tls) };
    specs.push({
      url: listener.url,
      options: {
        ...(needsTls(listener.url)
          ? { tls: tlsOptions(listener.url, tls, `listeners[${index}].tls`, !own) }
          : {}),
        ...(listener.proxyProtocol ? { proxyProtocol: true } : {}),
        ...(Object.values(listener.limits).some((v) => v !== undefined)
          ? { limits: { ...listener.limits } }
          : {}),
      },
    });
  });
  return specs;
}

/** The listener-specific TLS settings that differ from the defaults (a CA, client certificates). */
function pickSet(tls: TlsConfig): Partial<TlsConfig> {
  const out: Partial<TlsConfig> = {};
  if (tls.ca !== '') out.ca = tls.ca;
  if (tls.requestCert) out.requestCert = true;
  if (!tls.requireCert) out.requireCert = false;
  if (tls.usernameFrom !== 'none') out.usernameFrom = tls.usernameFrom;
  return out;
}

/** `flags`: whether --tls-cert/--tls-key would fill what is missing (not when the listener has its own files). */
function tlsOptions(url: string, tls: TlsConfig, key: string, flags: boolean): TlsListenOptions {
  // Name only what is missing: "needs a certificate and key" when the certificate is given misleads.
  const missing = (['cert', 'key'] as const).filter((name) => tls[name] === '');
  if (missing.length > 0) {
    const what = missing.map((name) => (name === 'cert' ? 'a certificate' : 'a private key')).join(' and ');
    const settings = missing.map((name) => `${key}.${name}`).join(' and ');
    const options = flags ? ` (or ${missing.map((name) => `--tls-${name}`).join(' and ')})` : '';
    throw new ListenerConfigError(`${url} needs ${what}: set ${settings}${options}`);
  }
  return {
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca === '' ? {} : { ca: tls.ca }),
    ...(tls.passphrase === '' ? {} : { passphrase: tls.passphrase }),
    // A CA for client certificates is only useful if they are asked for.
    requestCert: tls.requestCert || tls.ca !== '',
    requireCert: tls.requireCert,
    ...(tls.usernameFrom === 'none' ? {} : { usernameFrom: tls.usernameFrom }),
  };
}
