// A real OpenID provider (panva's oidc-provider) on loopback, shaped like a Keycloak realm, for the
// SSO tests: issuer path /realms/<realm>, Keycloak's claims (groups with full paths, realm_access,
// azp and typ "Bearer" in access tokens), users in the groups buyers / sellers / gsv-team, a small
// login form, and RP-initiated logout.
//
// Environment: OIDC_PORT (required), REALM (default "digitlify"), CLIENT_ID, CLIENT_SECRET,
// REDIRECT_URI and POST_LOGOUT_REDIRECT_URI (the app's callback and home page, exactly),
// OIDC_SIGNING_JWK (a private RSA JWK as JSON; generated when empty).
// Prints "ready <issuer>" on stdout once it listens; stops on SIGTERM.
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.OIDC_PORT);
if (!PORT) throw new Error('set OIDC_PORT');
const REALM = process.env.REALM || 'digitlify';
const PREFIX = `/realms/${REALM}`;
const ISSUER = `http://127.0.0.1:${PORT}${PREFIX}`;
const CLIENT_ID = process.env.CLIENT_ID || 'marketplace';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'marketplace-secret';
// Keycloak's access tokens name the requesting client in azp, and in aud only the clients whose
// roles they carry ("account" by default); an audience mapper would add our client id.
const ACCESS_TOKEN_AUDIENCE = process.env.ACCESS_TOKEN_AUDIENCE || 'account';
const API_RESOURCE = 'urn:digitlify:marketplace';
const DEFAULT_REALM_ROLES = ['offline_access', 'uma_authorization', `default-roles-${REALM}`];

// Keycloak's Group Membership mapper sends full group paths unless "Full group path" is off.
const USERS = {
  alice: { password: 'alice-pw', email: 'alice@example.test', name: 'Alice Buyer', groups: ['/buyers'] },
  sam: { password: 'sam-pw', email: 'sam@example.test', name: 'Sam Seller', groups: ['/sellers'] },
  olga: { password: 'olga-pw', email: 'olga@example.test', name: 'Olga Operator', groups: ['/gsv-team'] },
  // seller through a realm role (realm_access.roles) rather than a group
  rolf: { password: 'rolf-pw', email: 'rolf@example.test', name: 'Rolf Realmrole', groups: [], roles: ['sellers'] },
  nora: { password: 'nora-pw', email: 'nora@example.test', name: 'Nora Nogroup', groups: [] },
};

function claimsOf(id) {
  const u = USERS[id];
  return {
    sub: id,
    email: u.email,
    email_verified: true,
    name: u.name,
    preferred_username: id,
    groups: u.groups,
    realm_access: { roles: [...DEFAULT_REALM_ROLES, ...(u.roles || [])] },
  };
}

const signingKey = process.env.OIDC_SIGNING_JWK
  ? JSON.parse(process.env.OIDC_SIGNING_JWK)
  : { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: 'realm-key-1' };

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    post_logout_redirect_uris: process.env.POST_LOGOUT_REDIRECT_URI ? [process.env.POST_LOGOUT_REDIRECT_URI] : [],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [{ ...signingKey, use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true, methods: ['S256'] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  // groups ride on the profile scope, as a mapper on Keycloak's dedicated client scope puts them in every token
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
  },
  conformIdTokenClaims: false, // claims in the ID token too, as Keycloak does
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => API_RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: ACCESS_TOKEN_AUDIENCE,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  async extraTokenClaims(ctx, token) {
    if (token.kind !== 'AccessToken' || !USERS[token.accountId]) return undefined;
    const { sub, ...claims } = claimsOf(token.accountId);
    return { ...claims, azp: token.clientId, typ: 'Bearer' };
  },
  interactions: { url: (ctx, interaction) => `${PREFIX}/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!USERS[id]) return undefined;
    return { accountId: id, claims: async () => claimsOf(id) };
  },
  async loadExistingGrant(ctx) { // no consent screen, as for a first-party Keycloak client
    const { client, session, result } = ctx.oidc;
    const grantId = result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope('openid email profile offline_access');
    grant.addResourceScope(API_RESOURCE, 'api');
    await grant.save();
    return grant;
  },
  ttl: { AccessToken: 300, AuthorizationCode: 60, IdToken: 300, Interaction: 600, Session: 3600, Grant: 3600 },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>${escape(out.error)}</h1><p>${escape(out.error_description || '')}</p>`);
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>`
    + `<body><main>${body}</main></body></html>`;
}

function loginForm(action, username, message) {
  return page('Sign in to digitlify', `<h1>Sign in to your account</h1>
    ${message ? `<p role="alert">${escape(message)}</p>` : ''}
    <form method="post" action="${escape(action)}">
      <label for="username">Username or email</label>
      <input id="username" name="username" value="${escape(username || '')}" autocomplete="username" autofocus>
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password">
      <button type="submit" id="kc-login">Sign In</button>
    </form>`);
}

async function logoutSource(ctx, form) {
  ctx.body = page('Logging out', `<h1>Do you want to log out?</h1>${form}
    <button type="submit" form="op.logoutForm" name="logout" value="yes">Logout</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Logged out', '<h1>You are logged out</h1>');
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const action = req.url;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  if (details.prompt.name !== 'login') { // consent is granted by loadExistingGrant
    return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
  }
  if (req.method === 'GET') return res.end(loginForm(action));
  const form = await readForm(req);
  const username = (form.get('username') || '').trim().toLowerCase();
  const user = USERS[username];
  if (!user || user.password !== form.get('password')) {
    res.statusCode = 200; // Keycloak re-renders the form with the message
    return res.end(loginForm(action, username, 'Invalid username or password.'));
  }
  return provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

provider.on('server_error', (ctx, error) => console.error('server_error', ctx.path, error));
const handler = provider.callback();
const interactionPath = new RegExp(`^${PREFIX}/interaction/[\\w-]+$`);
const server = http.createServer((req, res) => {
  if (interactionPath.test(req.url)) {
    return interaction(req, res).catch((error) => {
      res.statusCode = 400;
      res.end(page('Error', `<p>${escape(error.message)}</p>`));
    });
  }
  if (!req.url.startsWith(PREFIX)) {
    res.statusCode = 404;
    return res.end();
  }
  req.originalUrl = req.url; // mounted under /realms/<realm>, like Keycloak
  req.url = req.url.slice(PREFIX.length) || '/';
  return handler(req, res);
});
server.listen(PORT, '127.0.0.1', () => console.log(`ready ${ISSUER}`));
process.on('SIGTERM', () => process.exit(0));
