package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// plainRequest reports whether r can take the plain path: no body, no
// upgrade, HTTP/1.x. Everything else goes through ReverseProxy.
func plainRequest(r *http.Request) bool {
	return (r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 && len(r.TransferEncoding) == 0 &&
		r.Method != http.MethodConnect && r.ProtoMajor == 1 && r.Header.Get("Upgrade") == ""
}

// hopHeaders are the headers of one connection, not passed on (RFC 9110
// section 7.6.1), as ReverseProxy drops them; the proxy's own
// X-Forwarded-* and X-Real-IP replace the client's.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

var replacedHeaders = map[string]bool{
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "X-Real-Ip": true,
}

// connectionTokens returns the header names h's Connection header lists
// (canonical), which are hop-by-hop too; nil when there are none.
func connectionTokens(h http.Header) map[string]bool {
	var m map[string]bool
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				if m == nil {
					m = map[string]bool{}
				}
				m[textproto.CanonicalMIMEHeaderKey(f)] = true
			}
		}
	}
	return m
}

// servePlain proxies a request without a body straight over the direct
// transport's pooled connections: the request is written from the
// incoming one without the copies ReverseProxy makes (the request, its
// header map, the URL, a context value), which were most of the
// gateway's own allocations per request. What reaches the replica and
// the client is what ReverseProxy with rewrite sends: the same headers
// dropped and added, the same flushing of streams, the same errors.
func (s *Server) servePlain(w http.ResponseWriter, r *http.Request, rt *route, upstream, ip string) {
	var tried []*replica
	var lastErr error
	for {
		rep := rt.pick(s.opts.Now().UnixNano(), tried)
		if rep == nil {
			if lastErr == nil {
				lastErr = errNoReplica
			}
			s.proxyError(w, r, lastErr)
			return
		}
		tried = append(tried, rep)
		resp, err := s.plainExchange(r, rep, upstream, ip)
		if err == nil {
			rep.downUntil.Store(0)
			s.plainResponse(w, r, resp)
			return
		}
		if r.Context().Err() != nil {
			s.proxyError(w, r, context.Canceled)
			return
		}
		lastErr = err
		rep.downUntil.Store(s.opts.Now().Add(s.opts.DownFor).UnixNano())
		if !retriable(r, err) {
			s.proxyError(w, r, err)
			return
		}
	}
}

func (s *Server) plainExchange(r *http.Request, rep *replica, upstream, ip string) (*http.Response, error) {
	dt := s.direct
	u := url.URL{Path: upstream, RawQuery: r.URL.RawQuery}
	if p := rep.url.Path; p != "" && p != "/" {
		u.Path = p + upstream
	}
	host := rep.url.Host
	write := func(bw *bufio.Writer) error {
		bw.WriteString(r.Method)
		bw.WriteByte(' ')
		bw.WriteString(u.RequestURI())
		bw.WriteString(" HTTP/1.1\r\nHost: ")
		bw.WriteString(r.Host)
		bw.WriteString("\r\n")
		conn := connectionTokens(r.Header)
		for k, vs := range r.Header {
			if hopHeaders[k] || replacedHeaders[k] || conn[k] {
				if k == "Te" && teTrailers(vs) {
					bw.WriteString("Te: trailers\r\n")
				}
				continue
			}
			for _, v := range vs {
				bw.WriteString(k)
				bw.WriteString(": ")
				bw.WriteString(v)
				bw.WriteString("\r\n")
			}
		}
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		bw.WriteString("X-Forwarded-For: ")
		bw.WriteString(ip)
		bw.WriteString("\r\nX-Forwarded-Host: ")
		bw.WriteString(r.Host)
		bw.WriteString("\r\nX-Forwarded-Proto: ")
		bw.WriteString(proto)
		bw.WriteString("\r\nX-Real-Ip: ")
		bw.WriteString(ip)
		_, err := bw.WriteString("\r\n\r\n")
		return err
	}
	return dt.roundTripRaw(r, host, write)
}

func teTrailers(vs []string) bool {
	for _, v := range vs {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), "trailers") {
				return true
			}
		}
	}
	return false
}

func (s *Server) plainResponse(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.proxyError(w, r, errors.New("the replica switched protocols unasked"))
		return
	}
	dst := w.Header()
	conn := connectionTokens(resp.Header)
	for k, vs := range resp.Header {
		if hopHeaders[k] || conn[k] {
			continue
		}
		dst[k] = vs
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		dst.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	// Streams (events, or answers of unknown length) are flushed after
	// every write, as ReverseProxy does with FlushInterval zero.
	flush := resp.ContentLength == -1
	if ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); strings.EqualFold(strings.TrimSpace(ct), "text/event-stream") {
		flush = true
	}
	buf := bufferPool{}.Get()
	defer bufferPool{}.Put(buf)
	rc := http.NewResponseController(w)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client went away
			}
			if flush {
				_ = rc.Flush()
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if s.opts.Logf != nil && r.Context().Err() == nil {
				s.opts.Logf("gateway: %s %s: reading the response: %v", r.Method, r.URL.Path, err)
			}
			// The client must not take a cut answer for a whole one.
			panic(http.ErrAbortHandler)
		}
	}
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			dst.Add(http.TrailerPrefix+k, v)
		}
	}
}

// plainReplicas reports whether every replica of rt is plain HTTP, as
// the plain path needs.
func plainReplicas(rt *route) bool {
	for _, rep := range rt.replicas {
		if rep.url.Scheme != "http" {
			return false
		}
	}
	return true
}
