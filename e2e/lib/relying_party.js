'use strict';
// A small OpenID Connect relying party, written from the specifications with Node's own crypto
// (no Twofold code): /start sends the browser to the provider with state, nonce and an S256
// PKCE challenge; /callback redeems the code with client_secret_basic, verifies the ID token's
// ES256 signature against the provider's JWK Set and its iss/aud/nonce/exp, and shows the
// claims on a page the test reads.
const http = require('node:http');
const crypto = require('node:crypto');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

async function verifyIdToken(idToken, { issuer, clientId, nonce, jwksUri }) {
  const [h, p, s] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  if (header.alg !== 'ES256') throw new Error(`unexpected alg ${header.alg}`);
  const jwks = await (await fetch(jwksUri)).json();
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key ${header.kid} in the JWK Set`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  if (!ok) throw new Error('bad ID token signature');
  if (claims.iss !== issuer) throw new Error(`iss ${claims.iss}`);
  if (claims.aud !== clientId) throw new Error(`aud ${claims.aud}`);
  if (claims.nonce !== nonce) throw new Error('nonce mismatch');
  if (claims.exp * 1000 < Date.now()) throw new Error('expired');
  return claims;
}

async function startRelyingParty({ issuer, clientId, clientSecret, port }) {
  const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const pending = new Map();
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, redirectUri);
    const page = (status, body) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>RP</title><body>${body}</body>`);
    };
    try {
      if (url.pathname === '/start') {
        const state = b64url(crypto.randomBytes(16));
        const nonce = b64url(crypto.randomBytes(16));
        const verifier = b64url(crypto.randomBytes(32));
        pending.set(state, { nonce, verifier });
        const auth = new URL(discovery.authorization_endpoint);
        auth.search = new URLSearchParams({
          response_type: 'code',
          client_id: clientId,
          redirect_uri: redirectUri,
          scope: 'openid email',
          state,
          nonce,
          code_challenge: b64url(crypto.createHash('sha256').update(verifier).digest()),
          code_challenge_method: 'S256',
          ...Object.fromEntries(url.searchParams),
        }).toString();
        res.writeHead(302, { location: auth.toString() });
        res.end();
        return;
      }
      if (url.pathname === '/callback') {
        const error = url.searchParams.get('error');
        if (error) return page(200, `<h1 id="error">${error}</h1>`);
        const flow = pending.get(url.searchParams.get('state'));
        if (!flow) return page(400, '<h1>unknown state</h1>');
        pending.delete(url.searchParams.get('state'));
        if (url.searchParams.get('iss') !== issuer) return page(400, '<h1>wrong iss</h1>');
        const tokenRes = await fetch(discovery.token_endpoint, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code: url.searchParams.get('code'),
            redirect_uri: redirectUri,
            code_verifier: flow.verifier,
          }),
        });
        const tokens = await tokenRes.json();
        if (!tokenRes.ok) return page(400, `<h1 id="error">${tokens.error}</h1>`);
        const claims = await verifyIdToken(tokens.id_token, {
          issuer, clientId, nonce: flow.nonce, jwksUri: discovery.jwks_uri,
        });
        return page(200, `<h1>Signed in</h1><p id="email">${claims.email}</p><p id="acr">${claims.acr}</p><p id="amr">${claims.amr.join(' ')}</p>`);
      }
      page(404, 'not found');
    } catch (e) {
      page(500, `<h1 id="error">${e.message}</h1>`);
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    redirectUri,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

module.exports = { startRelyingParty };
