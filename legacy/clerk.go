// Package legacy moves the app's users off Clerk: it reads Clerk's exports
// (the dashboard's CSV and the Backend API's JSON), creates or adopts each
// user's WorkOS user, personal organization and owner membership through
// workosapi, and records the outcome in legacy_user_map, the map the app's
// data migration re-keys its legacy rows by. The import only writes to
// WorkOS; users, organizations and memberships reach Postgres through the
// webhooks like any others, and Verify checks that they did.
package legacy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Format is an export's format.
type Format string

const (
	// FormatCSV is the Clerk dashboard's user export.
	FormatCSV Format = "csv"
	// FormatJSON is an array of Backend API user objects.
	FormatJSON Format = "json"
)

// ParseFormat reads --format; empty means detect.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "", FormatCSV, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("format %q: want csv or json", s)
}

// User is one Clerk user as the import needs it. Secrets of the export
// (TOTP secrets, backup codes, private metadata) are not kept.
type User struct {
	// Line is where the user starts in the file (1-based).
	Line          int
	ClerkID       string
	Email         string
	EmailVerified bool
	FirstName     string
	LastName      string
	// PasswordDigest and PasswordHasher are Clerk's stored hash and the
	// algorithm that made it ("bcrypt", "argon2id", …); empty without a
	// password.
	PasswordDigest string
	PasswordHasher string
}

// Why a row is skipped without being imported.
const (
	ReasonNoID           = "no Clerk id"
	ReasonNoEmail        = "no email"
	ReasonMalformed      = "malformed"
	ReasonDuplicateID    = "duplicate Clerk id"
	ReasonDuplicateEmail = "duplicate email"
)

// BadRow is a row of the file that is reported and skipped.
type BadRow struct {
	Line    int
	ClerkID string // when the row has one
	Reason  string // one of the Reason constants
	Detail  string
}

func (b BadRow) String() string {
	s := fmt.Sprintf("line %d", b.Line)
	if b.ClerkID != "" {
		s += " (" + b.ClerkID + ")"
	}
	s += ": " + b.Reason
	if b.Detail != "" {
		s += ": " + b.Detail
	}
	return s
}

// File is an export as read: the users to import, in file order, and the
// rows left out.
type File struct {
	Format Format
	Users  []User
	Bad    []BadRow
}

// ErrFile is an export that cannot be read at all (not CSV with Clerk's
// header, not a JSON array); rows that are wrong are BadRows instead.
var ErrFile = errors.New("not a Clerk export")

// maxIDLen bounds a Clerk id (theirs are "user_" and 27 characters).
const maxIDLen = 128

// Read reads an export; format "" detects it from the first character
// ('[' is JSON, anything else CSV).
func Read(r io.Reader, format Format) (File, error) {
	data, err := io.ReadAll(bufio.NewReader(r))
	if err != nil {
		return File{}, fmt.Errorf("read export: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // spreadsheet tools add a BOM
	if format == "" {
		format = detect(data)
	}
	var f File
	switch format {
	case FormatCSV:
		f, err = readCSV(data)
	case FormatJSON:
		f, err = readJSON(data)
	default:
		return File{}, fmt.Errorf("format %q: want csv or json", format)
	}
	if err != nil {
		return File{}, err
	}
	f.Format = format
	f.check()
	return f, nil
}

func detect(data []byte) Format {
	if t := bytes.TrimLeftFunc(data, unicode.IsSpace); len(t) > 0 && t[0] == '[' {
		return FormatJSON
	}
	return FormatCSV
}

// check moves the users that cannot be imported to Bad: no id, no email,
// a malformed one, and the second of two rows with the same Clerk id or
// email (importing both would give two Clerk users one WorkOS user).
func (f *File) check() {
	type seen struct {
		line int
		id   string
	}
	ids, emails := map[string]int{}, map[string]seen{}
	kept := f.Users[:0]
	for _, u := range f.Users {
		bad := func(reason, detail string) {
			f.Bad = append(f.Bad, BadRow{Line: u.Line, ClerkID: u.ClerkID, Reason: reason, Detail: detail})
		}
		key := strings.ToLower(u.Email)
		switch {
		case u.ClerkID == "":
			bad(ReasonNoID, "")
		case len(u.ClerkID) > maxIDLen || !utf8.ValidString(u.ClerkID) || strings.IndexFunc(u.ClerkID, notIDRune) >= 0:
			bad(ReasonMalformed, fmt.Sprintf("Clerk id %q", truncate(u.ClerkID)))
			continue
		case u.Email == "":
			bad(ReasonNoEmail, "")
		case !validEmail(u.Email):
			bad(ReasonMalformed, fmt.Sprintf("email %q", truncate(u.Email)))
		case ids[u.ClerkID] != 0:
			bad(ReasonDuplicateID, fmt.Sprintf("first on line %d", ids[u.ClerkID]))
			continue
		case emails[key].line != 0:
			bad(ReasonDuplicateEmail, fmt.Sprintf("%s is also on line %d (%s)", u.Email, emails[key].line, emails[key].id))
		default:
			kept = append(kept, u)
			emails[key] = seen{u.Line, u.ClerkID}
		}
		if u.ClerkID != "" && ids[u.ClerkID] == 0 {
			ids[u.ClerkID] = u.Line
		}
	}
	f.Users = kept
	slices.SortStableFunc(f.Bad, func(a, b BadRow) int { return a.Line - b.Line })
}

func notIDRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }

func validEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	return at > 0 && at < len(e)-1 && len(e) <= 320 && utf8.ValidString(e) &&
		strings.IndexFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

func truncate(s string) string {
	if len(s) <= 60 {
		return s
	}
	n := 60
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// bcrypt reports whether the user's password hash is one WorkOS imports
// as bcrypt: Clerk says so and the digest has a bcrypt prefix.
func (u User) bcrypt() bool {
	return strings.EqualFold(u.PasswordHasher, "bcrypt") &&
		(strings.HasPrefix(u.PasswordDigest, "$2a$") || strings.HasPrefix(u.PasswordDigest, "$2b$") || strings.HasPrefix(u.PasswordDigest, "$2y$"))
}

// passwordLeftOut names why a user with a password does not get it in
// WorkOS ("argon2id"), or "" when it is imported or there is none.
func (u User) passwordLeftOut() string {
	switch {
	case u.PasswordDigest == "" && u.PasswordHasher == "":
		return ""
	case u.bcrypt():
		return ""
	case strings.EqualFold(u.PasswordHasher, "bcrypt"):
		return "bcrypt (unusable digest)"
	case u.PasswordHasher == "":
		return "unknown hasher"
	}
	return strings.ToLower(u.PasswordHasher)
}
