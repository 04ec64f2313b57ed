// Package redact hides the credentials of connection strings (Postgres,
// NATS) in what syncd prints and logs. Every command and log line that
// shows a connection string, or an error that may quote one, goes through
// it, so a password with any character in it never reaches a terminal or a
// log.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces what is hidden.
const Mask = "…"

// keyword finds password=… in keyword/value connection strings and query
// strings; a quoted value may hold spaces and escaped quotes.
var keyword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&]+)`)

// URL redacts one connection string. It is parsed as a URL first, keeping
// the user name; when it is not a URL that parses unambiguously (a
// password with '@', '/', '#' or '?' in it defeats the parser, or makes it
// read part of the password as the host), everything between "://" and
// the last '@' is masked instead. password=… settings are masked too.
func URL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return keywords(s)
	}
	rest := s[i+3:]
	switch strings.Count(rest, "@") {
	case 0:
		return keywords(s)
	case 1:
		if u, err := url.Parse(s); err == nil && u.User != nil && strings.Contains(s, u.User.String()+"@"+u.Host) {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			return keywords(strings.Replace(u.String(), ":xxxxx@", ":"+Mask+"@", 1))
		}
	}
	return keywords(s[:i+3] + Mask + s[i+3+strings.LastIndex(rest, "@"):])
}

// Text redacts a message that may quote connection strings, such as a
// driver's error: from each "://" to the last '@' after it is masked (the
// message can hold the string more than once, cut differently), and so is
// every occurrence of each password in secrets — the connection strings
// the message may be about.
func Text(msg string, secrets ...string) string {
	for _, s := range secrets {
		p := password(s)
		if len(p) >= 4 {
			msg = strings.ReplaceAll(msg, p, Mask)
		}
		// A parser that cuts at the wrong character shows pieces of it
		// (as part of a host name, say).
		for _, piece := range strings.FieldsFunc(p, func(r rune) bool { return strings.ContainsRune("@/#?:", r) }) {
			if len(piece) >= 3 {
				msg = strings.ReplaceAll(msg, piece, Mask)
			}
		}
	}
	var b strings.Builder
	for {
		i := strings.Index(msg, "://")
		if i < 0 {
			break
		}
		at := strings.LastIndex(msg[i+3:], "@")
		if at < 0 {
			break
		}
		b.WriteString(msg[:i+3])
		b.WriteString(Mask)
		msg = msg[i+3+at:]
	}
	b.WriteString(msg)
	return keywords(b.String())
}

// Error is Text of err's message; nil is "".
func Error(err error, secrets ...string) string {
	if err == nil {
		return ""
	}
	return Text(err.Error(), secrets...)
}

func keywords(s string) string {
	if !strings.Contains(strings.ToLower(s), "password") {
		return s
	}
	return keyword.ReplaceAllString(s, "${1}"+Mask)
}

// password is the password of a connection string: between the user's
// ':' and the last '@' of a URL, or a password=… setting.
func password(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				return rest[c+1 : at]
			}
		}
	}
	if m := keyword.FindStringSubmatch(s); m != nil {
		return strings.Trim(m[2], "'")
	}
	return ""
}
