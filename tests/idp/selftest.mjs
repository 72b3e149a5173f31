#!/usr/bin/env node
// Self-test of the Paraply test IdP: starts idp.mjs on free ports with a throw-away key file,
// drives browserless logins, checks tokens, rotation and persistence across a restart.
// Exits non-zero on the first failure.   node tests/idp/selftest.mjs

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, sign, verify,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const FHIR = 'http://127.0.0.1:8080/fhir';
const REDIRECT = 'http://127.0.0.1:8080/auth/callback';
const PNR = 'https://id.oidc.se/claim/personalIdentityNumber';
const HSA = 'urn:oid:1.2.752.29.6.2.1';
const UNIT = 'http://sambi.se/attributes/1/healthCareUnitHsaId';
const PROVIDER = 'http://sambi.se/attributes/1/healthCareProviderHsaId';
const PORTAL = ['paraply-portal', 'paraply-portal-secret'];
const TESTS = ['paraply-tests', 'paraply-tests-secret'];

const dir = mkdtempSync(join(tmpdir(), 'paraply-idp-'));
const keysFile = join(dir, 'keys.json');
let child;
let passed = 0;

function step(name) {
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

// --- IdP process -----------------------------------------------------------

function startIdp(issuers) {
  return new Promise((ok, fail) => {
    const proc = spawn(process.execPath, [join(HERE, 'idp.mjs'), '--issuers', issuers,
      '--keys', keysFile, '--fhir-base', FHIR, '--redirect', REDIRECT],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    const want = issuers.split(',').length;
    const urls = [];
    let buf = '';
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    proc.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^issuer (http:\/\/127\.0\.0\.1:\d+) ready$/.exec(line);
        if (m) urls.push(m[1]);
        if (urls.length === want) ok({ proc, urls, stderr: () => err });
      }
    });
    proc.on('exit', (code) => fail(new Error(`idp exited early (${code}):\n${err}`)));
    setTimeout(() => fail(new Error(`idp did not start:\n${err}`)), 20000).unref();
  });
}

function stopIdp(proc) {
  return new Promise((ok) => {
    proc.removeAllListeners('exit');
    proc.on('exit', (code, signal) => ok({ code, signal }));
    proc.kill('SIGTERM');
  });
}

// --- HTTP with a cookie jar --------------------------------------------------

class Jar {
  constructor() { this.cookies = new Map(); }

  store(res) {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)
        || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now()));
      if (expired || !value) this.cookies.delete(name); else this.cookies.set(name, value);
    }
  }

  header() { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '); }
}

async function get(jar, url) {
  const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header() } });
  jar.store(res);
  return res;
}

// Follow redirects (cookie jar kept) until the client's redirect URI is reached.
async function authorize(issuer, jar, { clientId = PORTAL[0], loginHint, scope, extra = {} }) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(8).toString('hex');
  const q = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(loginHint ? { login_hint: loginHint } : {}),
    ...extra,
  });
  let url = `${issuer}/auth?${q}`;
  for (let hops = 0; hops < 10; hops += 1) {
    const res = await get(jar, url);
    if (![302, 303].includes(res.status)) {
      throw new Error(`unexpected ${res.status} at ${url}: ${await res.text()}`);
    }
    url = new URL(res.headers.get('location'), url).href;
    if (url.startsWith(REDIRECT)) {
      const params = new URL(url).searchParams;
      assert.equal(params.get('state'), state, 'state echoed');
      assert.equal(params.get('iss'), issuer, 'RFC 9207 iss parameter');
      return { params, verifier, hops: hops + 1 };
    }
  }
  throw new Error('too many redirects');
}

async function tokenRequest(issuer, [id, secret], form) {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`token ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

async function login(issuer, loginHint, { jar = new Jar(), scope = 'openid patient/*.rs', client = PORTAL, extra } = {}) {
  const { params, verifier } = await authorize(issuer, jar, { clientId: client[0], loginHint, scope, extra });
  assert.ok(params.get('code'), `code in redirect: ${params}`);
  const tokens = await tokenRequest(issuer, client, {
    grant_type: 'authorization_code',
    code: params.get('code'),
    redirect_uri: REDIRECT,
    code_verifier: verifier,
  });
  return { ...tokens, jar };
}

// --- JWT checks --------------------------------------------------------------

function decode(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
  };
}

async function jwks(issuer) {
  const res = await fetch(`${issuer}/jwks`);
  assert.equal(res.status, 200);
  return (await res.json()).keys;
}

function verifySignature(jwt, keys) {
  const [h, p, s] = jwt.split('.');
  const { kid, alg } = JSON.parse(Buffer.from(h, 'base64url'));
  const jwk = keys.find((k) => k.kid === kid);
  if (!jwk) return false;
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const opts = alg.startsWith('ES') ? { key, dsaEncoding: 'ieee-p1363' } : key;
  return verify('sha256', Buffer.from(`${h}.${p}`), opts, Buffer.from(s, 'base64url'));
}

function checkAccessToken(at, issuer, keys, alg) {
  const { header, payload } = decode(at);
  assert.equal(header.typ, 'at+jwt', 'RFC 9068 typ');
  assert.equal(header.alg, alg);
  assert.ok(keys.some((k) => k.kid === header.kid), 'kid published in JWKS');
  assert.ok(verifySignature(at, keys), 'access token signature verifies against JWKS');
  assert.equal(payload.iss, issuer);
  assert.equal(payload.aud, FHIR);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(payload.exp > now && payload.exp <= now + 3700, 'exp');
  assert.ok(payload.iat <= now + 1, 'iat');
  assert.ok(payload.jti, 'jti');
  assert.equal(typeof payload.scope, 'string');
  return { header, payload };
}

// --- The test ------------------------------------------------------------------

async function main() {
  let idp = await startIdp('citizen:0,region:0,kommun:0');
  child = idp.proc;
  const [citizen, region, kommun] = idp.urls;

  // Discovery and JWKS.
  for (const [issuer, kty] of [[citizen, 'RSA'], [region, 'RSA'], [kommun, 'EC']]) {
    const res = await fetch(`${issuer}/.well-known/openid-configuration`);
    assert.equal(res.status, 200);
    const d = await res.json();
    assert.equal(d.issuer, issuer);
    assert.equal(d.jwks_uri, `${issuer}/jwks`);
    assert.deepEqual(d.code_challenge_methods_supported, ['S256']);
    assert.ok(d.grant_types_supported.includes('client_credentials'));
    const keys = await jwks(issuer);
    assert.ok(keys.length >= 1 && keys.every((k) => k.kty === kty && !k.d && k.kid && k.use === 'sig'));
  }
  step('discovery documents and JWKS (RSA for citizen/region, EC for kommun, no private parts)');

  // Citizen login, browserless.
  const citizenKeys = await jwks(citizen);
  // OIDC Core: offline_access is only honoured together with prompt=consent.
  const tolvan = await login(citizen, 'tolvan', {
    scope: 'openid profile fhirUser launch/patient patient/*.rs offline_access',
    extra: { prompt: 'consent' },
  });
  const at = checkAccessToken(tolvan.access_token, citizen, citizenKeys, 'RS256');
  assert.equal(at.payload[PNR], '191212121212');
  assert.equal(at.payload.sub, '44a575ca-122e-4ff2-a975-51449259ac73');
  assert.equal(at.payload.client_id, 'paraply-portal');
  assert.deepEqual(at.payload.scope.split(' ').sort(), ['launch/patient', 'patient/*.rs']);
  assert.ok(tolvan.refresh_token, 'refresh token for offline_access');
  const idt = decode(tolvan.id_token);
  assert.equal(idt.payload[PNR], '191212121212', 'personnummer in ID token');
  assert.equal(idt.payload.name, 'Tolvan Tolvansson');
  assert.equal(idt.payload.aud, 'paraply-portal');
  assert.ok(verifySignature(tolvan.id_token, citizenKeys), 'ID token signature');
  step('citizen authorization code + PKCE login for tolvan: JWT access token with personnummer');

  // Refresh token.
  const refreshed = await tokenRequest(citizen, PORTAL, { grant_type: 'refresh_token', refresh_token: tolvan.refresh_token });
  assert.equal(checkAccessToken(refreshed.access_token, citizen, citizenKeys, 'RS256').payload[PNR], '191212121212');
  step('refresh token yields a new JWT access token');

  // Same cookie jar, other login_hint: must switch account, not reuse the session.
  const karin = await login(citizen, 'karin', { jar: tolvan.jar });
  assert.equal(decode(karin.access_token).payload[PNR], '197001011233');
  // Same jar, same hint: the session is reused.
  const again = await login(citizen, 'karin', { jar: tolvan.jar });
  assert.equal(decode(again.access_token).payload[PNR], '197001011233');
  // login_hint may also be the personnummer; paraply-tests can log users in too.
  const lisa = await login(citizen, '198505052384', { client: TESTS, scope: 'openid user/*.cruds' });
  assert.equal(decode(lisa.access_token).payload.given_name, 'Lisa');
  assert.equal(decode(lisa.access_token).payload.scope, 'user/*.cruds');
  step('login_hint switches accounts in one cookie jar; hint by personnummer; paraply-tests client');

  // Unknown account -> access_denied back at the client.
  const denied = await authorize(citizen, new Jar(), { loginHint: 'nobody', scope: 'openid' });
  assert.equal(denied.params.get('error'), 'access_denied');
  // PKCE is required, also for the confidential client.
  const noPkce = await fetch(`${citizen}/auth?${new URLSearchParams({
    client_id: PORTAL[0], response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', login_hint: 'tolvan',
  })}`, { redirect: 'manual' });
  const loc = new URL(noPkce.headers.get('location') ?? 'http://x/', citizen);
  assert.equal(loc.searchParams.get('error'), 'invalid_request', `PKCE required: ${loc}`);
  step('unknown login_hint -> access_denied; missing PKCE -> invalid_request');

  // Staff on region.
  const regionKeys = await jwks(region);
  const anna = await login(region, 'anna', { scope: 'openid user/*.cruds' });
  const annaAt = checkAccessToken(anna.access_token, region, regionKeys, 'RS256');
  assert.equal(annaAt.payload[HSA], 'SE2321000016-1003');
  assert.equal(annaAt.payload[UNIT], 'SE2321000016-15CQ');
  assert.equal(annaAt.payload[PROVIDER], 'SE2321000016-0001');
  assert.deepEqual(annaAt.payload.roles, ['lakare']);
  assert.equal(annaAt.payload[PNR], undefined);
  assert.equal(decode(anna.id_token).payload[HSA], 'SE2321000016-1003');
  // A citizen cannot log in at the region issuer.
  const wrongIssuer = await authorize(region, new Jar(), { loginHint: 'tolvan', scope: 'openid' });
  assert.equal(wrongIssuer.params.get('error'), 'access_denied');
  step('region staff login (anna): employee, unit and care-provider HSA-ids in tokens');

  // Staff on kommun, ES256.
  const kommunKeys = await jwks(kommun);
  const maria = await login(kommun, 'maria', { scope: 'openid user/*.cruds' });
  const mariaAt = checkAccessToken(maria.access_token, kommun, kommunKeys, 'ES256');
  assert.equal(mariaAt.payload[HSA], 'SE2120001314-3001');
  assert.equal(decode(maria.id_token).header.alg, 'ES256');
  assert.ok(verifySignature(maria.id_token, kommunKeys));
  step('kommun staff login (maria): ES256 access and ID tokens');

  // client_credentials system token.
  const sys = await tokenRequest(region, TESTS, { grant_type: 'client_credentials', scope: 'system/*.rs' });
  const sysAt = checkAccessToken(sys.access_token, region, regionKeys, 'RS256');
  assert.equal(sysAt.payload.scope, 'system/*.rs');
  assert.equal(sysAt.payload.client_id, 'paraply-tests');
  assert.equal(sysAt.payload[HSA], undefined);
  await assert.rejects(tokenRequest(region, PORTAL, { grant_type: 'client_credentials', scope: 'system/*.rs' }));
  step('client_credentials system token for paraply-tests (and refused for paraply-portal)');

  // SMART Backend Services: paraply-backend proves itself with an RS384 JWT signed by its own
  // key (kept in the keys file), no secret.
  const backendKey = JSON.parse(readFileSync(keysFile, 'utf8')).clients['paraply-backend'];
  assert.equal(backendKey.alg, 'RS384');
  const assertion = (aud, key = createPrivateKey(backendKey.pem)) => {
    const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const input = `${part({ alg: 'RS384', typ: 'JWT', kid: backendKey.kid })}.${part({
      iss: 'paraply-backend', sub: 'paraply-backend', aud, jti: randomUUID(), iat: now, exp: now + 300,
    })}`;
    return `${input}.${sign('sha384', Buffer.from(input), key).toString('base64url')}`;
  };
  const backendToken = (clientAssertion) => fetch(`${region}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials', scope: 'system/*.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion,
    }),
  });
  const backendRes = await backendToken(assertion(`${region}/token`));
  const backend = await backendRes.json();
  assert.ok(backendRes.ok, JSON.stringify(backend));
  const backendAt = checkAccessToken(backend.access_token, region, regionKeys, 'RS256');
  assert.equal(backendAt.payload.client_id, 'paraply-backend');
  assert.equal(backendAt.payload.sub, 'paraply-backend');
  assert.equal(backendAt.payload.scope, 'system/*.rs');
  const { privateKey: stranger } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  assert.equal((await backendToken(assertion(`${region}/token`, stranger))).status, 401);
  step('SMART Backend Services: paraply-backend gets a system token with an RS384 assertion (and not with another key)');

  // Key rotation via the admin endpoint.
  const oldKid = decode(tolvan.access_token).header.kid;
  const rot = await fetch(`${citizen}/admin/rotate`, { method: 'POST' });
  assert.equal(rot.status, 200);
  const { kid: newKid } = await rot.json();
  assert.notEqual(newKid, oldKid);
  const rotatedKeys = await jwks(citizen);
  assert.deepEqual(rotatedKeys.map((k) => k.kid), [newKid, oldKid], 'new key first, previous kept');
  // Session survives rotation: a fresh authorization with the old jar needs no new login.
  const after = await login(citizen, 'karin', { jar: tolvan.jar });
  assert.equal(decode(after.access_token).header.kid, newKid, 'new tokens signed with the new key');
  assert.ok(verifySignature(tolvan.access_token, rotatedKeys), 'old token still verifies');
  step('POST /admin/rotate: new kid signs, old kid still published');

  // Restart: keys persisted in the key file.
  const stopped = await stopIdp(child);
  assert.equal(stopped.code, 0, `clean exit on SIGTERM (${JSON.stringify(stopped)})`);
  idp = await startIdp(`citizen:${new URL(citizen).port}`);
  child = idp.proc;
  assert.deepEqual((await jwks(citizen)).map((k) => k.kid), [newKid, oldKid]);
  assert.ok(verifySignature(after.access_token, await jwks(citizen)), 'token from before restart verifies');
  const afterRestart = await login(citizen, 'elsa');
  assert.equal(decode(afterRestart.access_token).header.kid, newKid);
  assert.equal(decode(afterRestart.access_token).payload.birthdate, '2017-03-15');
  step('restart on the same port keeps the JWKS (persisted) and signs with the same kid');

  // --rotate on the command line.
  assert.equal((await stopIdp(child)).code, 0);
  child = undefined;
  const proc = spawn(process.execPath, [join(HERE, 'idp.mjs'), '--issuers', 'citizen:0', '--keys', keysFile, '--rotate'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  child = proc;
  const url = await new Promise((ok) => proc.stdout.on('data', (d) => ok(/issuer (\S+) ready/.exec(String(d))[1])));
  const kidsAfterCliRotate = (await jwks(url)).map((k) => k.kid);
  assert.equal(kidsAfterCliRotate.length, 2);
  assert.ok(!kidsAfterCliRotate.includes(oldKid) && kidsAfterCliRotate[1] === newKid);
  assert.equal((await stopIdp(child)).code, 0);
  child = undefined;
  step('--rotate adds a new signing key at start');

  console.log(`all ${passed} checks passed`);
}

main().then(() => {
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}, (err) => {
  console.error(`not ok - ${err.stack ?? err}`);
  if (child) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
