// Talking to pan's API: the bearer token (kept in sessionStorage, never in a
// URL) and errors, which the API always sends as JSON {code, message}.

const TOKEN_KEY = 'pan.token';
const USER_KEY = 'pan.username';

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  get username() {
    return sessionStorage.getItem(USER_KEY);
  },
  save(token, username) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, username);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
  },
};

/** An error to show: `message` is always meant for people. */
export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0 when the server could not be reached
    this.code = code;
    this.body = body;
  }

  /** Worth retrying: the network failed, the server had a passing problem, or asked us to slow down (429). */
  get transient() {
    return this.status === 0 || this.status === 429 || (this.status >= 500 && this.status !== 507);
  }

  /** How long the server asked us to wait before retrying (429, 503), in ms. */
  get retryAfterMs() {
    const s = this.body && Number(this.body.retry_after);
    return Number.isFinite(s) && s > 0 ? s * 1000 : 0;
  }
}

/** Called when the server says the token is no longer good. */
let onSignedOut = () => {};
export function setSignedOutHandler(fn) {
  onSignedOut = fn;
}

/** Turns a failed response into an ApiError with the server's message. */
export async function errorFrom(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON (a proxy's error page, say): say something useful instead.
  }
  if (body && typeof body.message === 'string') {
    return new ApiError(res.status, body.code || 'ERROR', body.message, body);
  }
  const message = res.status >= 500
    ? 'The server had a problem handling this request. Try again in a moment.'
    : 'The server refused this request.';
  return new ApiError(res.status, 'ERROR', message, body);
}

/** The same, from a status and a body already read as text (XMLHttpRequest). */
export function errorFromText(status, text) {
  const err = errorFrom(new Response(text, { status }));
  return err.then((e) => {
    if (status === 401 && e.code === 'UNAUTHENTICATED') onSignedOut(e.message);
    return e;
  });
}

export function networkError() {
  return new ApiError(0, 'NETWORK', 'Cannot reach the server. Check your connection and try again.');
}

/**
 * One API call. `json` is sent as a JSON body; the answer is parsed JSON, or
 * the Response itself with `raw: true`. Failures throw ApiError.
 */
export async function call(method, path, { json, body, headers, signal, raw = false } = {}) {
  const h = new Headers(headers);
  const token = session.token;
  if (token) h.set('Authorization', `Bearer ${token}`);
  if (json !== undefined) {
    h.set('Content-Type', 'application/json');
    body = JSON.stringify(json);
  }
  h.set('Accept', 'application/json');
  let res;
  try {
    res = await fetch(path, { method, headers: h, body, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw networkError();
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && err.code === 'UNAUTHENTICATED' && token) onSignedOut(err.message);
    throw err;
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

/** A query string from an object (values are encoded). */
export function qs(params) {
  return new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString();
}
