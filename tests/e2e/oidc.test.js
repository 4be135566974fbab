// "Sign in with Google" in a real browser, against a fake OpenID Connect provider this file runs
// on 127.0.0.1 (Node built-ins only): discovery document, key set, an authorization endpoint
// whose "login page" sends the browser straight back with a code, and a token endpoint that
// checks the client secret and the PKCE verifier and signs an RS256 ID token. The server is
// started with the OIDC_* settings pointing at it. Every step saves a screenshot, and the sign-in
// form with its button is the README's docs/screenshots/sign-in.png.

import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { docsScreenshotDir, launchBrowser, screenshotDir, startServer, waitUntil } from './helpers.js';

const CLIENT_ID = 'e2e-client';
const CLIENT_SECRET = 'e2e-client-secret';
const VIEWPORT = { width: 1000, height: 640 };

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** The fake provider; `next` is who signs in at the next authorization (or a refusal). */
async function startProvider() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'e2e-key', alg: 'RS256', use: 'sig' };
  const codes = new Map(); // code -> { nonce, challenge, redirectUri, person }
  const provider = { next: null, exchanged: 0 };

  const idToken = (claims) => {
    const header = b64url(JSON.stringify({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }));
    const body = b64url(JSON.stringify(claims));
    const signature = sign('sha256', Buffer.from(`${header}.${body}`), privateKey);
    return `${header}.${body}.${b64url(signature)}`;
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url, provider.issuer);
    const json = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer: provider.issuer,
        authorization_endpoint: `${provider.issuer}/authorize`,
        token_endpoint: `${provider.issuer}/token`,
        jwks_uri: `${provider.issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (url.pathname === '/jwks') return json(200, { keys: [jwk] });
    if (url.pathname === '/authorize') {
      // The provider's login page: whoever `next` is has signed in, or refused.
      const q = url.searchParams;
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('state', q.get('state'));
      if (provider.next === 'refuse') {
        back.searchParams.set('error', 'access_denied');
      } else {
        assert.equal(q.get('client_id'), CLIENT_ID);
        assert.equal(q.get('code_challenge_method'), 'S256');
        const code = b64url(randomBytes(16));
        codes.set(code, {
          nonce: q.get('nonce'),
          challenge: q.get('code_challenge'),
          redirectUri: q.get('redirect_uri'),
          person: provider.next,
        });
        back.searchParams.set('code', code);
      }
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let raw = '';
      req.on('data', (chunk) => (raw += chunk));
      req.on('end', () => {
        const form = new URLSearchParams(raw);
        const basic = Buffer.from((req.headers.authorization || '').replace(/^Basic /, ''), 'base64').toString();
        const grant = codes.get(form.get('code'));
        codes.delete(form.get('code'));
        const verifier = form.get('code_verifier') || '';
        const challenge = b64url(createHash('sha256').update(verifier).digest());
        if (basic !== `${CLIENT_ID}:${CLIENT_SECRET}`) return json(401, { error: 'invalid_client' });
        if (!grant || grant.challenge !== challenge || grant.redirectUri !== form.get('redirect_uri')) {
          return json(400, { error: 'invalid_grant' });
        }
        provider.exchanged += 1;
        const now = Math.floor(Date.now() / 1000);
        const { sub, email, name } = grant.person;
        return json(200, {
          access_token: b64url(randomBytes(16)),
          token_type: 'Bearer',
          expires_in: 3600,
          id_token: idToken({
            iss: provider.issuer,
            aud: CLIENT_ID,
            sub,
            email,
            email_verified: true,
            name,
            nonce: grant.nonce,
            iat: now,
            exp: now + 300,
          }),
        });
      });
      return undefined;
    }
    return json(404, { error: 'not_found' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  provider.issuer = `http://127.0.0.1:${server.address().port}`;
  provider.close = () => new Promise((resolve) => server.close(resolve));
  return provider;
}

/** A port free right now on 127.0.0.1: the server's callback URL must be known before it starts. */
async function freePort() {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('sign in with an OpenID Connect provider', () => {
  let provider;
  let server;
  let browser;
  const shots = screenshotDir();
  const pageErrors = [];

  before(async () => {
    provider = await startProvider();
    const port = await freePort();
    server = await startServer({
      BIND: `127.0.0.1:${port}`,
      OIDC_ISSUER: provider.issuer,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      OIDC_REDIRECT_URL: `http://127.0.0.1:${port}/auth/oidc/callback`,
      OIDC_NAME: 'Google',
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await provider?.close();
  });

  async function signInPage() {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(server.base + '/');
    const button = page.locator('#oidc-button');
    await waitUntil(() => button.isVisible(), 'the "Sign in with Google" button');
    assert.equal(await button.textContent(), 'Sign in with Google');
    return page;
  }

  it('a refusal at the provider is shown on the sign-in form', async () => {
    const page = await signInPage();
    provider.next = 'refuse';
    await page.locator('#oidc-button').click();
    const error = page.locator('#login-error');
    await waitUntil(() => error.isVisible(), 'the sign-in error');
    assert.equal(await error.textContent(), 'Sign-in was cancelled.');
    assert.equal(new URL(page.url()).search, '', 'oidc_error is taken out of the address bar');
    await page.screenshot({ path: path.join(shots, 'oidc-refused.png') });
    await page.context().close();
  });

  it('signing in at the provider opens the chat as a new account', async () => {
    const page = await signInPage();
    await page.screenshot({ path: path.join(shots, 'oidc-button.png') });
    await page.screenshot({ path: path.join(docsScreenshotDir(), 'sign-in.png') });
    provider.next = { sub: 'e2e-subject-1', email: 'dana@example.com', name: 'Dana Scully' };
    await page.locator('#oidc-button').click();
    await waitUntil(async () => (await page.locator('#me-name').textContent()) === 'Dana Scully', 'the chat');
    assert.equal(new URL(page.url()).pathname, '/');
    await page.locator('#conn-state[data-state="connected"]').waitFor({ timeout: 15_000 });
    assert.equal(provider.exchanged, 1, 'one code exchanged');
    const me = await page.evaluate(async () => (await fetch('/api/me')).json());
    assert.equal(me.user.email, 'dana@example.com');
    await page.screenshot({ path: path.join(shots, 'oidc-signed-in.png') });
    await page.context().close();
    assert.deepEqual(pageErrors, []);
  });
});
