/** Authentication and authorization for an embedded broker: `createBroker({ hooks: access.hooks() })`. */

export {
  AccessControl,
  type AccessControlOptions,
  type AuthFailure,
  type ListenerAccess,
} from './access-control.js';
export { Acl, grantAuthorizer } from './acl.js';
export { type HttpAuthOptions, HttpAuthProvider } from './http-hook.js';
export { JwtProvider, type JwtProviderOptions } from './jwt.js';
export { LoginThrottle, type LoginThrottleOptions } from './login-throttle.js';
export { type PasswordFileOptions, PasswordFileProvider } from './password-file.js';
export { hashPassword, verifyPassword } from './password-hash.js';
export { scramSha256 } from './scram.js';
export { deriveScramCredential, formatScramCredential, SCRAM_SHA_256 } from './scram-credential.js';
export type {
  AclGrant,
  AclSubject,
  Authorizer,
  AuthProvider,
  Credentials,
  Identity,
  ProviderDecision,
  SubscribeDecision,
} from './types.js';
