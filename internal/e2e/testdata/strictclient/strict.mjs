// A standards-strict relying party for Gatehouse: openid-client does discovery, the device
// flow, the code flow with PKCE (S256) and nonce, refresh, userinfo, revocation and
// introspection with its default (strict) checks, ID tokens included; jose validates each
// access token as RFC 9068 §4 asks. Refusals are checked too: 401 challenges for bad client
// credentials and revoked tokens, introspection only for a resource server.
//
// The Go test (internal/e2e/strictclient_test.go) starts Gatehouse, runs this script and
// plays the user: it reads these lines on stdout and answers them.
//
//	USER_CODE <code>      confirm the code in Slack (/access login <code>)
//	AUTHORIZE <url>       open the URL in a browser and sign in; the browser ends at
//	                      REDIRECT_URI, where this script listens (on file descriptor 3)
//	PASS <check>          a check held
//	FAIL <check>: <why>   a check failed; the script goes on where it can and exits 1
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET (a confidential client with the code, device
// and refresh grants and REDIRECT_URI registered), RS_ID, RS_SECRET (a client marked
// introspect: true), ROLE (a role the user holds), AUDIENCE (that role's audience),
// USER (the user's Slack ID, the tokens' subject).
import http from 'node:http';
import { webcrypto } from 'node:crypto';

// openid-client and jose use the Web Crypto global, which Node 18 has only behind a flag.
globalThis.crypto ??= webcrypto;
const client = await import('openid-client');
const jose = await import('jose');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const issuer = env('ISSUER');
const redirectURI = env('REDIRECT_URI');
const role = env('ROLE');
const audience = env('AUDIENCE');
const user = env('USER');

let failures = 0;

// check runs one named check; a failure is reported and counted, and returns undefined.
async function check(name, fn) {
  try {
    const out = await fn();
    console.log(`PASS ${name}`);
    return out;
  } catch (err) {
    failures++;
    const why = [err?.code, err?.error, err?.message, err?.cause?.message].filter(Boolean).join(' / ');
    console.log(`FAIL ${name}: ${why.replace(/\s+/g, ' ')}`);
    return undefined;
  }
}

function must(cond, message) {
  if (!cond) throw new Error(message);
}

// refusal runs fn, which must fail, and returns its error.
async function refusal(fn, what) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error(`${what} was not refused`);
}

// challenge returns the first WWW-Authenticate challenge of a 401 answer.
function challenge(err) {
  must(err.status === 401, `status ${err.status} (${err.error ?? err.code ?? err.message}), want 401`);
  must(err instanceof client.WWWAuthenticateChallengeError, `401 without WWW-Authenticate (${err.code ?? err.message})`);
  return err.cause[0];
}

// The issuer is a loopback http URL in the test; production issuers are https.
const insecure = { execute: [client.allowInsecureRequests] };

const config = await check('discovery', () =>
  client.discovery(new URL(issuer), env('CLIENT_ID'), { redirect_uris: [redirectURI] },
    client.ClientSecretBasic(env('CLIENT_SECRET')), insecure));
if (!config) process.exit(1);
const rs = await check('discovery as the resource server', () =>
  client.discovery(new URL(issuer), env('RS_ID'), undefined, client.ClientSecretBasic(env('RS_SECRET')), insecure));
const meta = config.serverMetadata();
const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri));

await check('discovery lists what the strict client needs', () => {
  must(meta.issuer === issuer, `issuer ${meta.issuer}`);
  must(meta.code_challenge_methods_supported?.includes('S256'), 'S256 is not advertised');
  for (const f of ['device_authorization_endpoint', 'revocation_endpoint', 'introspection_endpoint', 'userinfo_endpoint']) {
    must(meta[f], `${f} is missing`);
  }
});

// rfc9068 validates an access token as RFC 9068 §4 asks of a resource server.
async function rfc9068(name, token, clientID) {
  return check(`RFC 9068 access token (${name})`, async () => {
    const { payload } = await jose.jwtVerify(token, jwks, {
      typ: 'at+jwt',
      issuer,
      audience,
      requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
    });
    must(payload.client_id === clientID, `client_id ${payload.client_id}`);
    must(payload.sub === user, `sub ${payload.sub}`);
    must(payload.roles?.includes(role), `roles ${JSON.stringify(payload.roles)}`);
    return payload;
  });
}

// notAnAccessToken checks that an ID token cannot pass for an access token: the RFC 9068
// validator refuses it (§4: typ), and its audience is only its client, so a service that
// checks only aud refuses it too.
async function notAnAccessToken(name, idToken) {
  await check(`RFC 9068 validator refuses the ID token (${name})`, async () => {
    let accepted = false;
    try {
      await jose.jwtVerify(idToken, jwks, { typ: 'at+jwt', issuer, audience });
      accepted = true;
    } catch { /* refused, as it must be */ }
    must(!accepted, 'the ID token passed as an access token');
  });
  await check(`ID token audience is only its client (${name})`, () => {
    const { aud } = jose.decodeJwt(idToken); // openid-client verified it already
    const auds = [aud].flat();
    must(auds.length === 1 && auds[0] === env('CLIENT_ID'), `aud ${JSON.stringify(aud)}`);
  });
}

// idTokenClaims checks what openid-client validated and returns the claims.
function idTokenClaims(tokens, nonce) {
  const claims = tokens.claims(); // present only once openid-client validated the ID token
  must(claims, 'no ID token');
  must(claims.sub === user, `sub ${claims.sub}`);
  must(nonce === undefined || claims.nonce === nonce, `nonce ${claims.nonce}`);
  return claims;
}

// --- The device flow.
const device = await check('device flow', async () => {
  const da = await client.initiateDeviceAuthorization(config, { scope: `openid offline_access role:${role}` });
  console.log(`USER_CODE ${da.user_code}`);
  const tokens = await client.pollDeviceAuthorizationGrant(config, da);
  idTokenClaims(tokens);
  must(tokens.token_type?.toLowerCase() === 'bearer', `token_type ${tokens.token_type}`);
  return tokens;
});
if (device) {
  await rfc9068('device flow', device.access_token, env('CLIENT_ID'));
  await notAnAccessToken('device flow', device.id_token);
  await check('userinfo', async () => {
    const info = await client.fetchUserInfo(config, device.access_token, user);
    must(info.sub === user, `sub ${info.sub}`);
  });
}

// --- The code flow with PKCE and nonce; the browser comes back to redirectURI.
const callback = new Promise((resolve) => {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, redirectURI);
    if (url.pathname !== new URL(redirectURI).pathname) {
      res.writeHead(404).end();
      return;
    }
    resolve({ url, done: (status, text) => { res.writeHead(status, { 'Content-Type': 'text/plain' }).end(text); server.close(); } });
  });
  server.listen({ fd: 3 });
});

const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const code = await check('code flow with PKCE and nonce', async () => {
  const authorize = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectURI,
    scope: `openid offline_access role:${role}`,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  console.log(`AUTHORIZE ${authorize.href}`);
  const back = await callback;
  try {
    const tokens = await client.authorizationCodeGrant(config, back.url,
      { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
    idTokenClaims(tokens, nonce);
    back.done(200, 'signed in');
    return tokens;
  } catch (err) {
    back.done(500, 'sign-in failed');
    throw err;
  }
});
if (code) {
  await rfc9068('code flow', code.access_token, env('CLIENT_ID'));
  await notAnAccessToken('code flow', code.id_token);
}

// --- Refresh.
const refreshed = code && await check('refresh', async () => {
  must(code.refresh_token, 'the code flow gave no refresh token');
  const tokens = await client.refreshTokenGrant(config, code.refresh_token);
  if (tokens.id_token) idTokenClaims(tokens);
  return tokens;
});
if (refreshed) await rfc9068('refresh', refreshed.access_token, env('CLIENT_ID'));

// --- Introspection: only a resource server may introspect.
if (rs && refreshed) {
  await check('introspection by the resource server', async () => {
    const info = await client.tokenIntrospection(rs, refreshed.access_token);
    must(info.active === true, `active ${info.active}`);
    must(info.sub === user, `sub ${info.sub}`);
    must(info.client_id === env('CLIENT_ID'), `client_id ${info.client_id}`);
  });
  await check('introspection refused to a client that is no resource server', async () => {
    await refusal(() => client.tokenIntrospection(config, refreshed.access_token), 'introspection by a relying party');
  });
}

// --- Bad client credentials: 401 with a challenge (RFC 6749 §5.2, RFC 7662 §2.3).
await check('bad client credentials get 401 with a challenge', async () => {
  const bad = await client.discovery(new URL(issuer), env('CLIENT_ID'), undefined, client.ClientSecretBasic('not-the-secret'), insecure);
  const err = await refusal(() => client.refreshTokenGrant(bad, 'any-refresh-token'), 'a grant with a wrong secret');
  must(challenge(err).scheme === 'basic', `challenge ${JSON.stringify(err.cause)}`);
});

// --- Revocation (RFC 7009); introspection then says active:false.
if (rs && refreshed) {
  await check('revoking the refresh token ends the session', async () => {
    await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
    const info = await client.tokenIntrospection(rs, refreshed.access_token);
    must(info.active === false, `the access token is still active: ${JSON.stringify(info)}`);
    let refreshedAgain = false;
    try {
      await client.refreshTokenGrant(config, refreshed.refresh_token);
      refreshedAgain = true;
    } catch (err) {
      must(err.error === 'invalid_grant', `refresh after revocation: ${err.error ?? err.message}`);
    }
    must(!refreshedAgain, 'a revoked refresh token still refreshed');
  });
}
if (rs && device) {
  await check('revoking an access token', async () => {
    await client.tokenRevocation(config, device.access_token, { token_type_hint: 'access_token' });
    const info = await client.tokenIntrospection(rs, device.access_token);
    must(info.active === false, `still active: ${JSON.stringify(info)}`);
  });
  await check('userinfo refuses the revoked token with 401 invalid_token', async () => {
    const err = await refusal(() => client.fetchUserInfo(config, device.access_token, user), 'userinfo with a revoked token');
    const c = challenge(err);
    must(c.scheme === 'bearer' && c.parameters.error === 'invalid_token', `challenge ${JSON.stringify(c)}`);
  });
}

console.log(failures === 0 ? 'DONE' : `DONE with ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
