#!/usr/bin/env node
// Test OpenID providers for Paraply: one real oidc-provider instance per issuer
// (citizen eID, region staff, kommun staff) on 127.0.0.1. See README.md.
//
//   node tests/idp/idp.mjs [--issuers citizen:9001,region:9002,kommun:9003]
//                          [--fhir-base http://127.0.0.1:8080/fhir]
//                          [--redirect http://127.0.0.1:8080/auth/callback]...
//                          [--keys FILE] [--accounts FILE] [--access-token-ttl SECONDS]
//                          [--rotate] [--config FILE]
//
// Prints `issuer http://127.0.0.1:PORT ready` once per issuer, in --issuers order.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const DEFAULTS = {
  issuers: 'citizen:9001,region:9002,kommun:9003',
  fhirBase: 'http://127.0.0.1:8080/fhir',
  redirectUris: ['http://127.0.0.1:8080/auth/callback'],
  keysFile: join(HERE, 'keys.json'),
  accountsFile: join(HERE, 'accounts.json'),
  accessTokenTtl: 3600,
  rotate: false,
};

// Issuer profiles: signing algorithm and the acr reported for logins.
const PROFILES = {
  citizen: { alg: 'RS256', acr: 'http://id.elegnamnden.se/loa/1.0/loa3' },
  region: { alg: 'RS256', acr: 'http://id.sambi.se/loa/loa3' },
  kommun: { alg: 'ES256', acr: 'http://id.sambi.se/loa/loa3' },
};

// Redirect URI that is always registered for paraply-tests and paraply-public, so that a
// test can drive a login without anything listening there (it only reads the Location).
const TESTS_REDIRECT = 'http://127.0.0.1/paraply-tests/callback';

export const CLIENTS = {
  portal: { id: 'paraply-portal', secret: 'paraply-portal-secret' },
  tests: { id: 'paraply-tests', secret: 'paraply-tests-secret' },
  public: { id: 'paraply-public' },
  // SMART Backend Services (bulk export): client credentials, authenticated by a JWT it
  // signs with its own key (private_key_jwt, RS384); only on the region issuer.
  backend: { id: 'paraply-backend', alg: 'RS384', issuer: 'region' },
};

function usage(code) {
  const text = `usage: node idp.mjs [options]
  --issuers LIST          name:port[,name:port...]; names citizen, region, kommun
                          (default ${DEFAULTS.issuers}; port 0 = pick a free port)
  --fhir-base URL         resource indicator / access-token audience (default ${DEFAULTS.fhirBase})
  --redirect URI          redirect URI of paraply-portal; repeatable or comma-separated
                          (default ${DEFAULTS.redirectUris[0]})
  --keys FILE             signing-key store (default tests/idp/keys.json; created if missing)
  --accounts FILE         accounts (default tests/idp/accounts.json)
  --access-token-ttl S    access token lifetime in seconds (default ${DEFAULTS.accessTokenTtl})
  --rotate                add a fresh signing key to every started issuer before starting
  --config FILE           JSON file with any of: issuers, fhirBase, redirectUris, keysFile,
                          accountsFile, accessTokenTtl, rotate (command line wins)
`;
  (code ? process.stderr : process.stdout).write(text);
  process.exit(code);
}

function parseIssuers(value) {
  const list = Array.isArray(value) ? value : String(value).split(',').filter(Boolean);
  return list.map((item) => {
    if (typeof item === 'object') return { name: item.name, port: Number(item.port ?? 0), alg: item.alg };
    const [name, port, alg] = item.trim().split(':');
    return { name, port: Number(port ?? 0), alg };
  }).map((i) => {
    if (!i.name || !Number.isInteger(i.port) || i.port < 0 || i.port > 65535) {
      throw new Error(`bad issuer spec ${JSON.stringify(i)}`);
    }
    return { ...i, alg: i.alg || PROFILES[i.name]?.alg || 'RS256' };
  });
}

function loadOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      issuers: { type: 'string' },
      'fhir-base': { type: 'string' },
      redirect: { type: 'string', multiple: true },
      keys: { type: 'string' },
      accounts: { type: 'string' },
      'access-token-ttl': { type: 'string' },
      rotate: { type: 'boolean' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) usage(0);
  let fromFile = {};
  let base = process.cwd();
  if (values.config) {
    fromFile = JSON.parse(readFileSync(values.config, 'utf8'));
    base = dirname(resolve(values.config));
  }
  const opts = { ...DEFAULTS, ...fromFile };
  if (fromFile.keysFile) opts.keysFile = resolve(base, fromFile.keysFile);
  if (fromFile.accountsFile) opts.accountsFile = resolve(base, fromFile.accountsFile);
  if (values.issuers) opts.issuers = values.issuers;
  if (values['fhir-base']) opts.fhirBase = values['fhir-base'];
  if (values.redirect) opts.redirectUris = values.redirect.flatMap((r) => r.split(',')).filter(Boolean);
  if (values.keys) opts.keysFile = resolve(values.keys);
  if (values.accounts) opts.accountsFile = resolve(values.accounts);
  if (values['access-token-ttl']) opts.accessTokenTtl = Number(values['access-token-ttl']);
  if (values.rotate) opts.rotate = true;
  opts.issuers = parseIssuers(opts.issuers);
  if (typeof opts.redirectUris === 'string') opts.redirectUris = opts.redirectUris.split(',');
  opts.fhirBase = opts.fhirBase.replace(/\/+$/, '');
  return opts;
}

// ---------------------------------------------------------------------------
// Signing keys, persisted in a JSON file so tokens survive restarts
// ---------------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function thumbprint(jwk) {
  // RFC 7638: required public members, lexicographic order, no whitespace.
  const members = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return b64url(createHash('sha256').update(JSON.stringify(members)).digest());
}

function newSigningKey(alg, withPem = false) {
  const { privateKey } = alg.startsWith('ES')
    ? generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg] })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const key = { ...jwk, kid: thumbprint(jwk), alg, use: 'sig' };
  // A client's key is also kept as PKCS#8 PEM, the form a test's JWT library signs with.
  return withPem ? { ...key, pem: privateKey.export({ format: 'pem', type: 'pkcs8' }) } : key;
}

// The public members of a JWK (what a client registers in its `jwks`).
function publicJwk(key) {
  const members = key.kty === 'RSA' ? ['kty', 'n', 'e'] : ['kty', 'crv', 'x', 'y'];
  return Object.fromEntries([...members, 'kid', 'alg', 'use'].map((m) => [m, key[m]]));
}

class KeyStore {
  constructor(file) {
    this.file = file;
    this.data = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
    this.data.issuers ||= {};
    this.data.clients ||= {};
    if (!Array.isArray(this.data.cookieKeys) || !this.data.cookieKeys.length) {
      this.data.cookieKeys = [b64url(randomBytes(32))];
      this.dirty = true;
    }
  }

  // Keys of one issuer; the first key of the wanted algorithm signs, the rest only verify.
  keysFor(name, alg) {
    let keys = this.data.issuers[name]?.keys ?? [];
    if (!keys.some((k) => k.alg === alg)) {
      keys = [newSigningKey(alg), ...keys];
      this.data.issuers[name] = { keys };
      this.dirty = true;
    }
    return keys;
  }

  // The key a client signs its assertions with (private_key_jwt), made on first start.
  clientKey(clientId, alg) {
    let key = this.data.clients[clientId];
    if (!key || key.alg !== alg) {
      key = newSigningKey(alg, true);
      this.data.clients[clientId] = key;
      this.dirty = true;
    }
    return key;
  }

  // New signing key first; keep `keep` previous keys of the issuer in the JWKS.
  rotate(name, alg, keep = 1) {
    const old = (this.data.issuers[name]?.keys ?? []).slice(0, keep);
    this.data.issuers[name] = { keys: [newSigningKey(alg), ...old] };
    this.dirty = true;
    return this.data.issuers[name].keys;
  }

  save() {
    if (!this.dirty) return;
    // Re-read so concurrent instances (other issuers, other processes) are not clobbered.
    let onDisk = {};
    try { onDisk = JSON.parse(readFileSync(this.file, 'utf8')); } catch { /* first start */ }
    const merged = {
      cookieKeys: onDisk.cookieKeys?.length ? onDisk.cookieKeys : this.data.cookieKeys,
      issuers: { ...(onDisk.issuers ?? {}), ...this.data.issuers },
      clients: { ...(onDisk.clients ?? {}), ...this.data.clients },
    };
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
    this.dirty = false;
  }
}

// ---------------------------------------------------------------------------
// In-memory adapter, one storage per issuer (the bundled one is process-global)
// ---------------------------------------------------------------------------

function memoryAdapterFactory() {
  const store = new Map(); // key -> { payload, expiresAt }
  const get = (key) => {
    const e = store.get(key);
    if (!e) return undefined;
    if (e.expiresAt && e.expiresAt < Date.now()) { store.delete(key); return undefined; }
    return e.payload;
  };
  return class MemoryAdapter {
    constructor(model) { this.model = model; }

    key(id) { return `${this.model}:${id}`; }

    async upsert(id, payload, expiresIn) {
      const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
      store.set(this.key(id), { payload, expiresAt });
      if (payload.grantId) {
        const gk = `grant:${payload.grantId}`;
        const members = get(gk) ?? [];
        members.push(this.key(id));
        store.set(gk, { payload: members, expiresAt: undefined });
      }
      if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
      if (payload.uid) store.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt });
    }

    async find(id) { return get(this.key(id)); }

    async findByUid(uid) {
      const id = get(`sessionUid:${uid}`);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = get(`userCode:${userCode}`);
      return id ? this.find(id) : undefined;
    }

    async consume(id) {
      const p = get(this.key(id));
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) { store.delete(this.key(id)); }

    async revokeByGrantId(grantId) {
      const gk = `grant:${grantId}`;
      for (const k of get(gk) ?? []) store.delete(k);
      store.delete(gk);
    }
  };
}

// ---------------------------------------------------------------------------
// SMART on FHIR scopes accepted for the FHIR resource server
// ---------------------------------------------------------------------------

const FHIR_TYPES = [
  '*', 'Patient', 'RelatedPerson', 'Practitioner', 'PractitionerRole', 'Organization',
  'CareTeam', 'CarePlan', 'Goal', 'Appointment', 'Encounter', 'Condition', 'Task',
  'Communication', 'ServiceRequest', 'DocumentReference', 'Consent', 'Provenance',
  'AuditEvent', 'Questionnaire', 'QuestionnaireResponse', 'Observation', 'Location',
  'HealthcareService', 'Endpoint', 'Schedule', 'Slot', 'Group',
];

function smartScopes() {
  // SMART v2: every non-empty subset of c,r,u,d,s in that order; v1: read, write, *.
  const perms = [];
  for (let mask = 1; mask < 32; mask += 1) perms.push([...'cruds'].filter((_, i) => mask & (1 << i)).join(''));
  perms.push('read', 'write', '*');
  const scopes = ['launch', 'launch/patient', 'launch/encounter'];
  for (const ctx of ['patient', 'user', 'system']) {
    for (const type of FHIR_TYPES) for (const p of perms) scopes.push(`${ctx}/${type}.${p}`);
  }
  return scopes.join(' ');
}

const RS_SCOPES = smartScopes();

// ---------------------------------------------------------------------------
// One issuer
// ---------------------------------------------------------------------------

const PNR = 'https://id.oidc.se/claim/personalIdentityNumber';

function loadAccounts(file, name) {
  const all = JSON.parse(readFileSync(file, 'utf8'));
  const list = all[name] ?? [];
  const bySub = new Map(list.map((a) => [a.sub, a]));
  const findByHint = (hint) => {
    const h = String(hint).trim();
    return list.find((a) => a.login === h || a.sub === h
      || Object.values(a.claims).some((v) => v === h));
  };
  return { list, bySub, findByHint };
}

function buildProvider(issuer, spec, opts, accounts, keys, cookieKeys, Adapter, backendKey) {
  const profile = PROFILES[spec.name] ?? { alg: spec.alg, acr: 'urn:paraply:test:loa' };
  const claimNames = [...new Set(accounts.list.flatMap((a) => Object.keys(a.claims)))];

  const policy = interactionPolicy.base();
  // A login_hint naming someone else than the session's account forces a new login, so one
  // cookie jar can be reused for several users.
  policy.get('login').checks.push(new interactionPolicy.Check(
    'login_hint_mismatch',
    'login_hint names another account than the current session',
    (ctx) => {
      const { session, params } = ctx.oidc;
      if (!params.login_hint || !session.accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const wanted = accounts.findByHint(params.login_hint);
      return wanted?.sub !== session.accountId;
    },
  ));

  const redirects = opts.redirectUris;
  const postLogout = [...new Set(redirects.map((r) => `${new URL(r).origin}/`))];

  const configuration = {
    adapter: Adapter,
    jwks: { keys },
    cookies: { keys: cookieKeys },
    clients: [
      {
        client_id: CLIENTS.portal.id,
        client_secret: CLIENTS.portal.secret,
        redirect_uris: redirects,
        post_logout_redirect_uris: postLogout,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: CLIENTS.tests.id,
        client_secret: CLIENTS.tests.secret,
        redirect_uris: [...new Set([...redirects, TESTS_REDIRECT])],
        post_logout_redirect_uris: postLogout,
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: CLIENTS.public.id,
        redirect_uris: [...new Set([...redirects, TESTS_REDIRECT])],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      ...(backendKey ? [{
        client_id: CLIENTS.backend.id,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: CLIENTS.backend.alg,
        jwks: { keys: [publicJwk(backendKey)] },
      }] : []),
    ],
    clientDefaults: {
      id_token_signed_response_alg: spec.alg,
    },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'profile', 'fhirUser',
      'https://id.oidc.se/scope/naturalPersonNumber'],
    claims: {
      // Conservative for tests: every account claim comes with `openid`.
      openid: ['sub', ...claimNames.filter((c) => c !== 'fhirUser')],
      fhirUser: ['fhirUser'],
      'https://id.oidc.se/scope/naturalPersonNumber': [PNR],
    },
    conformIdTokenClaims: false,
    acrValues: [profile.acr],
    findAccount: async (_ctx, sub) => {
      const account = accounts.bySub.get(sub);
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
    },
    extraTokenClaims: async (_ctx, token) => {
      if (!token.accountId) return undefined;
      const account = accounts.bySub.get(token.accountId);
      return account ? { ...account.claims } : undefined;
    },
    interactions: {
      policy,
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    pkce: { required: () => true },
    enabledJWA: {
      // RS384/ES384: what SMART Backend Services asks clients to sign assertions with.
      clientAuthSigningAlgValues: ['RS256', 'RS384', 'PS256', 'ES256', 'ES384'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => opts.fhirBase,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator.replace(/\/+$/, '') !== opts.fhirBase) throw new errors.InvalidTarget();
          return {
            scope: RS_SCOPES,
            audience: opts.fhirBase,
            accessTokenTTL: opts.accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: spec.alg } },
          };
        },
      },
    },
    ttl: {
      AccessToken: opts.accessTokenTtl,
      ClientCredentials: opts.accessTokenTtl,
      IdToken: 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
      RefreshToken: 86400,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };

  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => console.error(`[${spec.name}] server_error`, err));
  return provider;
}

// ---------------------------------------------------------------------------
// Browserless interactions: /interaction/:uid logs in the login_hint account
// ---------------------------------------------------------------------------

function readBody(req) {
  return new Promise((ok, fail) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => ok(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function handleInteraction(state, req, res) {
  const { provider, accounts, profile, name } = state;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`no such interaction (cookies missing?): ${err.message}\n`);
    return;
  }
  const { prompt, params, session, grantId } = details;
  let result;
  let merge = false;

  if (prompt.name === 'login') {
    let hint = params.login_hint;
    if (req.method === 'POST') {
      hint = new URLSearchParams(await readBody(req)).get('login') ?? hint;
    }
    if (!hint) {
      // Manual use from a browser: a one-field form listing the accounts.
      const rows = accounts.list.map((a) => `<li><button name="login" value="${escapeHtml(a.login)}">${
        escapeHtml(a.login)}</button> ${escapeHtml(a.claims.name ?? '')} — ${escapeHtml(a.description ?? '')}</li>`).join('\n');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`<!doctype html><meta charset="utf-8"><title>${escapeHtml(name)} test login</title>
<h1>${escapeHtml(name)} test IdP</h1><form method="post"><ul>${rows}</ul>
<p><input name="login" placeholder="login, sub or identifier"> <button>Log in</button></p></form>\n`);
      return;
    }
    const account = accounts.findByHint(hint);
    if (account && session?.accountId && session.accountId !== account.sub) {
      // Switching accounts: end the old session here instead of oidc-provider's
      // "logout first" auto-submitting form, which a browserless client cannot follow.
      const old = await provider.Session.findByUid(session.uid);
      if (old) await old.destroy();
      delete details.session;
      await details.save(details.exp - Math.floor(Date.now() / 1000));
    }
    result = account
      ? { login: { accountId: account.sub, acr: profile.acr } }
      : { error: 'access_denied', error_description: `unknown test account: ${hint}` };
  } else if (prompt.name === 'consent') {
    // Auto-consent: grant everything that was asked for.
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    if (d.rar) for (const detail of d.rar) grant.addRar(detail);
    result = { consent: { grantId: await grant.save() } };
    merge = true;
  } else {
    result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
  }

  const location = await provider.interactionResult(req, res, result, { mergeWithLastSubmission: merge });
  res.writeHead(303, { location, 'cache-control': 'no-store' });
  res.end();
}

function isLoopback(req) {
  const a = req.socket.remoteAddress ?? '';
  return a === '127.0.0.1' || a === '::1' || a === '::ffff:127.0.0.1';
}

async function startIssuer(spec, opts, keyStore) {
  const server = createServer();
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(spec.port, '127.0.0.1', ok);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const accounts = loadAccounts(opts.accountsFile, spec.name);
  const Adapter = memoryAdapterFactory();
  const profile = PROFILES[spec.name] ?? { alg: spec.alg, acr: 'urn:paraply:test:loa' };

  const state = { name: spec.name, issuer, accounts, profile, server };
  const backendKey = spec.name === CLIENTS.backend.issuer
    ? keyStore.clientKey(CLIENTS.backend.id, CLIENTS.backend.alg)
    : undefined;
  const build = (keys) => {
    state.provider = buildProvider(issuer, spec, opts, accounts, keys, keyStore.data.cookieKeys, Adapter, backendKey);
    state.callback = state.provider.callback();
  };
  let keys = opts.rotate ? keyStore.rotate(spec.name, spec.alg) : keyStore.keysFor(spec.name, spec.alg);
  keyStore.save();
  build(keys);

  server.on('request', async (req, res) => {
    try {
      const path = req.url.split('?')[0];
      if (path === '/admin/rotate') {
        if (req.method !== 'POST' || !isLoopback(req)) {
          res.writeHead(req.method !== 'POST' ? 405 : 403).end();
          return;
        }
        const keep = Number(new URLSearchParams(req.url.split('?')[1] ?? '').get('keep') ?? 1);
        keys = keyStore.rotate(spec.name, spec.alg, Number.isInteger(keep) && keep >= 0 ? keep : 1);
        keyStore.save();
        build(keys); // same adapter storage: sessions, grants and refresh tokens survive
        console.error(`[${spec.name}] rotated signing key, kid ${keys[0].kid}`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kid: keys[0].kid, kids: keys.map((k) => k.kid) }));
        return;
      }
      if (/^\/interaction\/[^/]+\/?$/.test(path)) {
        await handleInteraction(state, req, res);
        return;
      }
      state.callback(req, res);
    } catch (err) {
      console.error(`[${spec.name}]`, err);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${err.message}\n`);
    }
  });
  return state;
}

// ---------------------------------------------------------------------------

async function main() {
  let opts;
  try {
    opts = loadOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    usage(2);
  }
  const keyStore = new KeyStore(opts.keysFile);
  const started = [];
  const shutdown = (signal) => {
    for (const s of started) {
      s.server.close();
      s.server.closeAllConnections();
    }
    process.stderr.write(`idp: ${signal}, stopped\n`);
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  for (const spec of opts.issuers) {
    const state = await startIssuer(spec, opts, keyStore);
    started.push(state);
    process.stderr.write(`idp: ${spec.name} (${spec.alg}, ${state.accounts.list.length} accounts) at ${state.issuer}\n`);
    process.stdout.write(`issuer ${state.issuer} ready\n`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
