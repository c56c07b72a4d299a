//! The stall page's HTTP edge (`stall.page_listen`): the page itself (one HTML file, one
//! script, one style sheet, no build step), sign-in by one-time link, and the page's API.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (it asks `/api/stall` who is signed in) |
//! | `GET /signin?token=…` | a page whose form POSTs the token (a link previewer that fetches the link does not use it up) |
//! | `POST /signin` | uses the link once: a session cookie, then 303 to `/` (no secret in the address after sign-in) |
//! | `POST /signout` | ends this session (CSRF token in the form) |
//! | `GET /api/stall` | the vendor: names, the static QR's account, today's date, the CSRF token |
//! | `GET /api/qr.svg` | the stall's static VietQR |
//! | `GET /api/events` | server-sent events: `snapshot` (today's payments), then each `payment` as it lands (`id:` = the stream's cursor; a reconnect with `Last-Event-ID` or `?after=` resumes after it) |
//! | `POST /api/intents` | asks for an amount: a payment intent made in the vendor's name (`X-CSRF-Token`) |
//! | `GET /api/intents/{id}` and `…/qr.svg` | its status and its dynamic QR |
//!
//! Every request after sign-in needs the session cookie; a vendor reaches only her own things.
//! A state-changing request must come from the page itself: its `Origin` must be this host,
//! and the API's need the session's CSRF token.

use std::time::Duration;

use ::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use hyper::body::Incoming;
use paymesh_platform::ApiError;
use paymesh_platform::auth::Principal;
use paymesh_platform::edge::fields::sql;
use paymesh_platform::http::{self, Response};
use paymesh_platform::time::{Date, ns_from_timestamp, rfc3339_from_ns, timestamp_from_ns};
use paymesh_proto::payment::v1 as ppb;
use paymesh_proto::payment::v1::{EventKind, IntentStatus};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::announce::{self, grouped, whole_dong};
use crate::service::StallService;
use crate::sessions;
use crate::store;

const PAGE_HTML: &str = include_str!("../assets/stall.html");
const PAGE_JS: &str = include_str!("../assets/stall.js");
const PAGE_CSS: &str = include_str!("../assets/stall.css");
const SIGNIN_HTML: &str = include_str!("../assets/signin.html");
const SIGNIN_JS: &str = include_str!("../assets/signin.js");

/// The largest form or JSON body the page sends.
const BODY_BYTES_MAX: usize = 4 * 1024;
/// A comment line on the event stream this often keeps proxies and phones from closing it.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// The most an amount asked for may be (the payment service's bound for VND intents).
const AMOUNT_MAX: i64 = 999_999_999_999;
/// Expiry choices the page offers, in seconds (the payment service takes 60..86,400).
const EXPIRY_CHOICES: [u32; 3] = [60, 300, 900];

/// Content-Security-Policy of every answer: only this origin's script, style and images (the
/// QR codes are SVG files of this origin), no frames, forms only to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn with_headers(mut r: Response, cache: bool) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !cache {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

fn asset(content_type: &str, body: &'static str) -> Response {
    with_headers(
        http::respond(
            StatusCode::OK,
            content_type,
            Bytes::from_static(body.as_bytes()),
        ),
        false,
    )
}

fn refuse(status: StatusCode, reason: &str, message: &str) -> Response {
    with_headers(
        http::json(
            status,
            &json!({"code": status.as_u16(), "reason": reason, "message": message}),
        ),
        false,
    )
}

fn error(e: ApiError) -> Response {
    with_headers(http::error(e), false)
}

fn redirect(to: &str, set_cookie: Option<&str>) -> Response {
    let mut r = http::respond(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = set_cookie
        && let Ok(v) = HeaderValue::from_str(c)
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    with_headers(r, false)
}

/// A page that says why sign-in did not happen (Vietnamese, then English).
fn signin_refused(status: StatusCode, vi: &str, en: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/stall.css\"><title>paymesh</title></head>\
         <body><main class=\"notice\"><h1 id=\"refused\">{vi}</h1><p lang=\"en\">{en}</p></main></body></html>"
    );
    with_headers(
        http::respond(status, "text/html; charset=utf-8", body),
        false,
    )
}

/// Whether a state-changing request comes from a page of this host: browsers send `Origin`
/// on every POST; another site's form or script carries its own.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (headers.get(header::ORIGIN).map(HeaderValue::to_str), host) {
        (Some(Ok(origin)), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        // No Origin: not a browser's cross-site request (browsers send it on POST).
        (None, _) => true,
        _ => false,
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The vendor signed in on this request: her session's token and merchant.
struct Session {
    token: String,
    merchant: Uuid,
}

impl StallService {
    /// Answers one request of the page.
    pub(crate) async fn page(&self, req: hyper::Request<Incoming>) -> Response {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        match (&method, path.as_str()) {
            (&Method::GET, "/") => asset("text/html; charset=utf-8", PAGE_HTML),
            (&Method::GET, "/stall.js") => asset("text/javascript; charset=utf-8", PAGE_JS),
            (&Method::GET, "/stall.css") => asset("text/css; charset=utf-8", PAGE_CSS),
            (&Method::GET, "/signin.js") => asset("text/javascript; charset=utf-8", SIGNIN_JS),
            (&Method::GET, "/signin") => asset("text/html; charset=utf-8", SIGNIN_HTML),
            (&Method::POST, "/signin") => self.sign_in(req).await,
            (&Method::POST, "/signout") => self.sign_out(req).await,
            (&Method::GET, "/healthz") => http::respond(StatusCode::OK, "text/plain", "ok\n"),
            (_, p) if p.starts_with("/api/") => {
                let session = match self.session(req.headers()).await {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        return refuse(
                            StatusCode::UNAUTHORIZED,
                            "SIGNED_OUT",
                            "not signed in: open your sign-in link",
                        );
                    }
                    Err(e) => return error(e),
                };
                let answer = match (&method, p) {
                    (&Method::GET, "/api/stall") => self.stall(&session).await,
                    (&Method::GET, "/api/qr.svg") => self.static_qr(&session).await,
                    (&Method::GET, "/api/events") => {
                        let after = req
                            .headers()
                            .get("last-event-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                            .or_else(|| query_param(query.as_deref(), "after"));
                        self.events(&session, after).await
                    }
                    (&Method::POST, "/api/intents") => self.ask_amount(&session, req).await,
                    (&Method::GET, p) if p.starts_with("/api/intents/") => {
                        let rest = &p["/api/intents/".len()..];
                        match rest.strip_suffix("/qr.svg") {
                            Some(id) => self.intent_qr(&session, id).await,
                            None => self.intent_status(&session, rest).await,
                        }
                    }
                    _ => Err(ApiError::NotFound { resource: "page" }),
                };
                answer.unwrap_or_else(error)
            }
            _ => refuse(StatusCode::NOT_FOUND, "NOT_FOUND", "no such page"),
        }
    }

    /// The session of the request's cookie, if live.
    async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
        let Some(token) = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(sessions::from_cookie_header)
        else {
            return Ok(None);
        };
        let merchant = store::session_merchant(&self.inner.pool, &sessions::digest(token))
            .await
            .map_err(sql)?;
        Ok(merchant.map(|merchant| Session {
            token: token.to_owned(),
            merchant,
        }))
    }

    /// The merchant, if still an ACTIVE vendor; otherwise every session of hers is ended.
    async fn still_vendor(
        &self,
        merchant: Uuid,
    ) -> Result<paymesh_proto::merchant::v1::Merchant, ApiError> {
        match self.active_vendor(merchant).await {
            Err(e @ (ApiError::FailedPrecondition { .. } | ApiError::NotFound { .. })) => {
                self.revoke(merchant, &format!("merchant no longer a vendor: {e}"))
                    .await?;
                Err(ApiError::Unauthenticated(format!("signed out: {e}")))
            }
            other => other,
        }
    }

    async fn sign_in(&self, req: hyper::Request<Incoming>) -> Response {
        if !same_origin(req.headers()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "CROSS_SITE",
                "sign in from the link's own page",
            );
        }
        let Some((_, body)) = http::body(req, BODY_BYTES_MAX).await else {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TOO_LARGE",
                "the form is too large",
            );
        };
        let token = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .filter(|t| sessions::plausible(t));
        let Some(token) = token else {
            return signin_refused(
                StatusCode::BAD_REQUEST,
                "Liên kết đăng nhập không hợp lệ.",
                "This sign-in link is not valid.",
            );
        };
        let merchant = match store::use_link(&self.inner.pool, &sessions::digest(&token)).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return signin_refused(
                    StatusCode::GONE,
                    "Liên kết đã được dùng hoặc đã hết hạn. Hãy xin một liên kết mới.",
                    "This link was used already or has expired. Ask for a new one.",
                );
            }
            Err(e) => return error(sql(e)),
        };
        if let Err(e) = self.still_vendor(merchant).await {
            tracing::info!(%merchant, error = %e, "stall sign-in refused");
            return signin_refused(
                StatusCode::FORBIDDEN,
                "Quầy này đang tạm ngưng.",
                "This stall is not active.",
            );
        }
        let session = match sessions::new_token() {
            Ok(t) => t,
            Err(e) => return error(ApiError::Internal(e)),
        };
        let ttl = self.inner.settings.session_ttl;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = store::insert_session(
            &self.inner.pool,
            &sessions::digest(&session),
            merchant,
            ttl_ms,
        )
        .await
        {
            return error(sql(e));
        }
        tracing::info!(%merchant, "stall signed in");
        redirect(
            "/",
            Some(&sessions::set_cookie(
                &session,
                ttl.as_secs(),
                self.inner.settings.cookie_secure,
            )),
        )
    }

    async fn sign_out(&self, req: hyper::Request<Incoming>) -> Response {
        if !same_origin(req.headers()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "CROSS_SITE",
                "sign out from the page",
            );
        }
        let session = match self.session(req.headers()).await {
            Ok(s) => s,
            Err(e) => return error(e),
        };
        let Some((_, body)) = http::body(req, BODY_BYTES_MAX).await else {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TOO_LARGE",
                "the form is too large",
            );
        };
        if let Some(s) = session {
            let csrf = form_urlencoded::parse(&body)
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if !sessions::same(&csrf, &sessions::csrf_of(&s.token)) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "CSRF",
                    "the form's token is not this session's",
                );
            }
            if let Err(e) =
                store::revoke_session(&self.inner.pool, &sessions::digest(&s.token), "signed out")
                    .await
            {
                return error(sql(e));
            }
        }
        redirect(
            "/",
            Some(&sessions::clear_cookie(self.inner.settings.cookie_secure)),
        )
    }

    async fn stall(&self, s: &Session) -> Result<Response, ApiError> {
        let m = self.still_vendor(s.merchant).await?;
        let today = Date::today_in_vietnam();
        let (y, mo, d) = today.civil();
        let name = if m.trading_name.is_empty() {
            m.business_name.clone()
        } else {
            m.trading_name.clone()
        };
        Ok(with_headers(
            http::json(
                StatusCode::OK,
                &json!({
                    "merchant_id": m.id,
                    "name": name,
                    "business_name": m.business_name,
                    "market": m.market_name,
                    "stall": m.stall_number,
                    "account": m.virtual_account_number,
                    "bank_bin": m.collection_bank_bin,
                    "today": format!("{y:04}-{mo:02}-{d:02}"),
                    "csrf": sessions::csrf_of(&s.token),
                    "expiry_choices": EXPIRY_CHOICES,
                }),
            ),
            false,
        ))
    }

    async fn static_qr(&self, s: &Session) -> Result<Response, ApiError> {
        let m = self.still_vendor(s.merchant).await?;
        svg(&m.static_qr_payload)
    }

    /// The stream of the vendor's payments: opened first, then today's payments read (so a
    /// payment committing in between is in one or the other, perhaps both: the page keeps a
    /// payment once by its id), then each event as it commits.
    async fn events(&self, s: &Session, after: Option<String>) -> Result<Response, ApiError> {
        self.still_vendor(s.merchant).await?;
        let after = match after.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) if c.bytes().all(|b| b.is_ascii_digit()) && c.len() <= 19 => Some(c.to_owned()),
            Some(_) => {
                return Err(ApiError::invalid(
                    "after",
                    "must be a cursor the stream sent",
                ));
            }
        };
        let merchant = s.merchant.to_string();
        let stream = self
            .inner
            .payments
            .watch(&merchant, after.as_deref().unwrap_or(""))
            .await?;
        let mut first = Vec::new();
        if after.is_none() {
            let start = Date::today_in_vietnam().vietnam_start_unix();
            let payments = self
                .inner
                .payments
                .payments_since(
                    &merchant,
                    timestamp_from_ns(start.saturating_mul(1_000_000_000)),
                )
                .await?;
            let list: Vec<Value> = payments
                .iter()
                .filter_map(announce::of_payment)
                .map(|a| a.page_json())
                .collect();
            first.push(frame(None, "snapshot", &json!({ "payments": list })));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        for f in first {
            let _ = tx.try_send(f);
        }
        tokio::spawn(
            self.clone()
                .forward(s.token.clone(), s.merchant, stream, tx),
        );
        let mut r = http::streaming(
            StatusCode::OK,
            "text/event-stream; charset=utf-8",
            tokio_stream::wrappers::ReceiverStream::new(rx),
        );
        r.headers_mut()
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(with_headers(r, false))
    }

    /// Sends each event of `stream` to the page until the page goes away, the payment stream
    /// ends (the page reconnects from its last cursor) or the session ends.
    async fn forward(
        self,
        token: String,
        merchant: Uuid,
        mut stream: tonic::Streaming<ppb::WatchPaymentsResponse>,
        tx: tokio::sync::mpsc::Sender<Bytes>,
    ) {
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        let mut check = tokio::time::interval(self.inner.settings.status_check);
        check.tick().await;
        loop {
            let out = tokio::select! {
                () = tx.closed() => return,
                message = stream.message() => match message {
                    Ok(Some(m)) => match m.event {
                        Some(event) => event_frame(&event),
                        None => continue,
                    },
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%merchant, %status, "stall: payment stream ended");
                        return;
                    }
                },
                _ = keepalive.tick() => Bytes::from_static(b": keepalive\n\n"),
                _ = check.tick() => {
                    let live = store::session_merchant(&self.inner.pool, &sessions::digest(&token))
                        .await
                        .map(|m| m.is_some());
                    let ended = match live {
                        Ok(false) => true,
                        Ok(true) => matches!(self.still_vendor(merchant).await, Err(ApiError::Unauthenticated(_))),
                        Err(_) => false,
                    };
                    if ended {
                        let _ = tx.send(frame(None, "signed_out", &json!({}))).await;
                        return;
                    }
                    continue;
                }
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    }

    async fn ask_amount(
        &self,
        s: &Session,
        req: hyper::Request<Incoming>,
    ) -> Result<Response, ApiError> {
        if !same_origin(req.headers()) {
            return Ok(refuse(
                StatusCode::FORBIDDEN,
                "CROSS_SITE",
                "ask from the page itself",
            ));
        }
        let csrf = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !sessions::same(&csrf, &sessions::csrf_of(&s.token)) {
            return Ok(refuse(
                StatusCode::FORBIDDEN,
                "CSRF",
                "the request's token is not this session's",
            ));
        }
        let Some((_, body)) = http::body(req, BODY_BYTES_MAX).await else {
            return Ok(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TOO_LARGE",
                "the request is too large",
            ));
        };
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| ApiError::invalid("body", "must be a JSON object"))?;
        let amount = amount_field(v.get("amount"))?;
        let expires = match v.get("expires_in_seconds").and_then(Value::as_u64) {
            None => 300,
            Some(n) => EXPIRY_CHOICES
                .into_iter()
                .find(|c| u64::from(*c) == n)
                .ok_or_else(|| ApiError::invalid("expires_in_seconds", "must be 60, 300 or 900"))?,
        };
        let key = v
            .get("key")
            .and_then(Value::as_str)
            .filter(|k| {
                (8..=64).contains(&k.len())
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .ok_or_else(|| ApiError::invalid("key", "8-64 letters, digits or -, one per ask"))?;
        self.still_vendor(s.merchant).await?;
        let merchant = s.merchant.to_string();
        let created = self
            .inner
            .payments
            .create_intent_as(
                &Principal::Merchant(merchant.clone()),
                ppb::CreatePaymentIntentRequest {
                    merchant_id: merchant.clone(),
                    amount: Some(paymesh_proto::common::v1::Money {
                        amount: amount.to_string(),
                        currency_code: "VND".into(),
                    }),
                    order_reference: String::new(),
                    expires_in_seconds: expires,
                    ..Default::default()
                },
                &format!("stall-{key}"),
            )
            .await?;
        let intent = created.intent.ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("CreatePaymentIntent answered no intent"))
        })?;
        Ok(with_headers(
            http::json(StatusCode::OK, &intent_json(&intent)),
            false,
        ))
    }

    /// The vendor's own intent (another's is not found).
    async fn own_intent(&self, s: &Session, id: &str) -> Result<ppb::PaymentIntent, ApiError> {
        let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound { resource: "intent" })?;
        match self.inner.payments.intent(&id.to_string()).await? {
            Some(i) if i.merchant_id == s.merchant.to_string() => Ok(i),
            _ => Err(ApiError::NotFound { resource: "intent" }),
        }
    }

    async fn intent_status(&self, s: &Session, id: &str) -> Result<Response, ApiError> {
        let intent = self.own_intent(s, id).await?;
        Ok(with_headers(
            http::json(StatusCode::OK, &intent_json(&intent)),
            false,
        ))
    }

    async fn intent_qr(&self, s: &Session, id: &str) -> Result<Response, ApiError> {
        let intent = self.own_intent(s, id).await?;
        svg(&intent.qr_payload)
    }
}

fn svg(payload: &str) -> Result<Response, ApiError> {
    if payload.is_empty() {
        return Err(ApiError::FailedPrecondition {
            reason: "NO_QR",
            message: "this stall has no QR yet".into(),
        });
    }
    let svg = vietqr::render_svg(payload)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("rendering a QR: {e}")))?;
    Ok(with_headers(
        http::respond(StatusCode::OK, "image/svg+xml", svg),
        false,
    ))
}

/// A whole number of đồng, 1..999,999,999,999, as a JSON string or number.
fn amount_field(v: Option<&Value>) -> Result<i64, ApiError> {
    let text = match v {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(ApiError::invalid("amount", "required")),
    };
    let ok = !text.is_empty()
        && text.len() <= 12
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    match text.parse::<i64>() {
        Ok(n) if ok && (1..=AMOUNT_MAX).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "amount",
            "must be whole đồng, 1 to 999,999,999,999, digits only",
        )),
    }
}

fn intent_json(i: &ppb::PaymentIntent) -> Value {
    let amount = whole_dong(i.amount.as_ref()).unwrap_or_default();
    let received = whole_dong(i.amount_received.as_ref()).unwrap_or_default();
    let expire_ns = i
        .expire_time
        .as_ref()
        .and_then(|t| ns_from_timestamp(t).ok())
        .unwrap_or_default();
    let status = IntentStatus::try_from(i.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("INTENT_STATUS_")
                .to_owned()
        })
        .unwrap_or_default();
    json!({
        "intent_id": i.id,
        "status": status,
        "amount": amount.to_string(),
        "amount_text": format!("{} đ", grouped(amount)),
        "words": paymesh_vn::words::number_words(u64::try_from(amount).unwrap_or_default()),
        "amount_received": received.to_string(),
        "reference": i.reference,
        "expire_time": rfc3339_from_ns(expire_ns),
        "qr": format!("/api/intents/{}/qr.svg", i.id),
    })
}

/// One server-sent event.
fn frame(id: Option<&str>, event: &str, data: &Value) -> Bytes {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    // serde_json never writes a raw newline inside its output.
    out.push_str(&data.to_string());
    out.push_str("\n\n");
    Bytes::from(out)
}

/// The frame of a payment event: `payment` when money reached the vendor, `intent` when an
/// intent of hers was cancelled, else `skip` (the cursor moves on).
fn event_frame(event: &ppb::PaymentEvent) -> Bytes {
    let id = Some(event.cursor.as_str());
    if let Some(a) = announce::of_event(event) {
        let mut data = a.page_json();
        if let Some(intent) = &event.intent {
            data["intent"] = intent_json(intent);
        }
        return frame(id, "payment", &data);
    }
    if event.kind == EventKind::IntentCancelled as i32
        && let Some(intent) = &event.intent
    {
        return frame(id, "intent", &intent_json(intent));
    }
    frame(id, "skip", &json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_the_vendor_types_are_whole_dong_in_range() {
        assert_eq!(amount_field(Some(&json!("150000"))).unwrap(), 150_000);
        assert_eq!(amount_field(Some(&json!(150000))).unwrap(), 150_000);
        assert_eq!(
            amount_field(Some(&json!("999999999999"))).unwrap(),
            AMOUNT_MAX
        );
        for bad in [
            json!("0"),
            json!("007"),
            json!("1.5"),
            json!("1e3"),
            json!("-5"),
            json!("1000000000000"),
            json!(""),
            json!(null),
            json!(1.5),
        ] {
            assert!(amount_field(Some(&bad)).is_err(), "{bad}");
        }
        assert!(amount_field(None).is_err());
    }

    #[test]
    fn events_are_framed_for_event_source() {
        let f = frame(Some("42"), "payment", &json!({"a": "x\ny"}));
        assert_eq!(
            std::str::from_utf8(&f).unwrap(),
            "id: 42\nevent: payment\ndata: {\"a\":\"x\\ny\"}\n\n"
        );
    }

    #[test]
    fn only_this_hosts_pages_may_post() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8090"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8090"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
