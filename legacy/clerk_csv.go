package legacy

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// csvColumns is the header of Clerk's dashboard export. The import reads
// the columns by name, so an export with them in another order, or with
// more, reads the same; id and primary_email_address are required.
var csvColumns = []string{
	"id", "first_name", "last_name", "username", "primary_email_address", "primary_phone_number",
	"verified_email_addresses", "unverified_email_addresses", "verified_phone_numbers",
	"unverified_phone_numbers", "totp_secret", "password_digest", "password_hasher",
}

// readCSV reads the dashboard export. The list columns hold several
// addresses separated by "," (inside quotes) or "|".
func readCSV(data []byte) (File, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1 // checked per row, so a short row is a bad row, not the end
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return File{}, fmt.Errorf("%w: CSV header: %v", ErrFile, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"id", "primary_email_address"} {
		if _, ok := col[need]; !ok {
			return File{}, fmt.Errorf("%w: CSV header has no %s column (want Clerk's: %s)", ErrFile, need, strings.Join(csvColumns, ","))
		}
	}
	width := len(header)
	var f File
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				f.Bad = append(f.Bad, BadRow{Line: pe.StartLine, Reason: ReasonMalformed, Detail: pe.Err.Error()})
				continue
			}
			return File{}, fmt.Errorf("read CSV: %w", err)
		}
		line, _ := r.FieldPos(0)
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if len(rec) != width {
			f.Bad = append(f.Bad, BadRow{Line: line, ClerkID: get("id"), Reason: ReasonMalformed,
				Detail: fmt.Sprintf("%d fields, the header has %d", len(rec), width)})
			continue
		}
		email := get("primary_email_address")
		f.Users = append(f.Users, User{
			Line:           line,
			ClerkID:        get("id"),
			Email:          email,
			EmailVerified:  email != "" && containsFold(splitList(get("verified_email_addresses")), email),
			FirstName:      get("first_name"),
			LastName:       get("last_name"),
			PasswordDigest: get("password_digest"),
			PasswordHasher: get("password_hasher"),
		})
	}
}

// splitList splits a list column on "," and "|".
func splitList(s string) []string {
	return slices.DeleteFunc(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' }),
		func(v string) bool { return strings.TrimSpace(v) == "" })
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(v string) bool { return strings.EqualFold(strings.TrimSpace(v), s) })
}
