// Package gateway is dstack's data plane for services: an HTTP(S) reverse
// proxy, on the standard library's httputil.ReverseProxy, in front of each
// service's ready replicas.
//
// # Routes
//
// A service is reached two ways:
//
//   - by path, as dstack's in-server proxy publishes it:
//     /proxy/services/PROJECT/RUN/... (PROJECT is the table's project,
//     "main" by default); /proxy/services/PROJECT/RUN answers 308 to the
//     same path with a slash. With strip_prefix (the default) the replica
//     gets the path after the prefix, else the whole path;
//   - by host, when the table has a domain: RUN.DOMAIN, path unchanged.
//
// Models (services with `model:`) are reached through an OpenAI-compatible
// endpoint on any host that is not a service's: GET /v1/models lists them,
// POST /v1/chat/completions and /v1/completions go to the service whose
// model the request body names, at the model's prefix (/v1 by default).
// The same endpoint is also at /proxy/models/PROJECT/ as in dstack. As in
// dstack, the model endpoint always needs a token.
//
// Requests go to a service's replicas in turn (round robin). A replica
// that cannot be reached is set aside for a few seconds, and an
// idempotent request (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or one whose
// body can be sent again) that failed on it is sent to the next one.
// WebSocket upgrades are passed through, and streamed responses (server-
// sent events, responses without a length) are flushed as each write
// arrives. A service with no replica (scaled to zero) holds its requests
// until one is ready or the queue timeout passes (503).
//
// `auth: true` requires `Authorization: Bearer TOKEN` where the SHA-256
// of TOKEN (hex) is one of the table's tokens; 401 otherwise.
// `rate_limits` act as dstack's gateway (nginx's limit_req) makes them:
// the longest matching prefix's limit applies, per client IP address or
// per value of a header, at rps with burst extra requests let through at
// once; a request over the limit gets 429.
//
// # Admin API
//
// The admin API listens apart from the public one (loopback by default)
// and needs `Authorization: Bearer ADMIN_TOKEN`:
//
//	PUT  /api/routes   the whole Table as JSON (replaces the current one)
//	GET  /api/routes   the current Table
//	GET  /api/stats    per-service request statistics, below
//	GET  /api/health   {"status":"ok"}
//
// GET /api/stats answers, for a control loop that scales on requests per
// second:
//
//	{
//	  "services": [
//	    {
//	      "project": "main",
//	      "name": "llm",
//	      "rps": 12.5,          // requests per second over the last 60 s
//	      "in_flight": 3,       // requests being served now
//	      "queued": 0,          // requests held while the service has no replica
//	      "windows": {          // per window length in seconds, as dstack's gateway reports
//	        "30":  {"requests": 390, "request_time": 0.021},
//	        "60":  {"requests": 750, "request_time": 0.020},
//	        "300": {"requests": 750, "request_time": 0.020}
//	      }
//	    }
//	  ]
//	}
//
// From Go, gatewayproc.Publish(ctx, state, environ) builds the table from
// a state and pushes it (starting this machine's gateway when needed), and
// gatewayproc.Client.Stats reads the statistics.
//
// request_time is the mean time in seconds from a request's arrival to
// its response's end. A request counts when it ends; queued requests are
// those held now, so a service scaled to zero with "queued" > 0 needs a
// replica.
package gateway
