package legacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// clerkJSONUser is the part of a Backend API user object the import reads.
// Clerk's API leaves password digests out; exports made for migrations
// carry them as password_digest and password_hasher.
type clerkJSONUser struct {
	ID                    string `json:"id"`
	FirstName             string `json:"first_name"`
	LastName              string `json:"last_name"`
	PrimaryEmailAddressID string `json:"primary_email_address_id"`
	EmailAddresses        []struct {
		ID           string `json:"id"`
		EmailAddress string `json:"email_address"`
		Verification *struct {
			Status string `json:"status"`
		} `json:"verification"`
	} `json:"email_addresses"`
	PasswordDigest string `json:"password_digest"`
	PasswordHasher string `json:"password_hasher"`
}

// readJSON reads an array of Backend API users, one element at a time,
// so that an element of the wrong shape is a bad row and the rest are
// read.
func readJSON(data []byte) (File, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return File{}, fmt.Errorf("%w: JSON export is not an array of users", ErrFile)
	}
	lines := newLineIndex(data)
	var f File
	for dec.More() {
		line := lines.at(skipSpace(data, int(dec.InputOffset())))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			// A syntax error leaves nothing after it readable.
			f.Bad = append(f.Bad, BadRow{Line: line, Reason: ReasonMalformed,
				Detail: fmt.Sprintf("%v; the rest of the file is not read", err)})
			return f, nil
		}
		var u clerkJSONUser
		if err := json.Unmarshal(raw, &u); err != nil {
			var id struct {
				ID any `json:"id"`
			}
			_ = json.Unmarshal(raw, &id)
			s, _ := id.ID.(string)
			f.Bad = append(f.Bad, BadRow{Line: line, ClerkID: s, Reason: ReasonMalformed, Detail: jsonDetail(err)})
			continue
		}
		out := User{
			Line:           line,
			ClerkID:        strings.TrimSpace(u.ID),
			FirstName:      strings.TrimSpace(u.FirstName),
			LastName:       strings.TrimSpace(u.LastName),
			PasswordDigest: strings.TrimSpace(u.PasswordDigest),
			PasswordHasher: strings.TrimSpace(u.PasswordHasher),
		}
		for _, e := range u.EmailAddresses {
			if e.ID == u.PrimaryEmailAddressID || (u.PrimaryEmailAddressID == "" && len(u.EmailAddresses) == 1) {
				out.Email = strings.TrimSpace(e.EmailAddress)
				out.EmailVerified = e.Verification != nil && e.Verification.Status == "verified"
				break
			}
		}
		f.Users = append(f.Users, out)
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		f.Bad = append(f.Bad, BadRow{Line: lines.at(int(dec.InputOffset())), Reason: ReasonMalformed, Detail: err.Error()})
	}
	return f, nil
}

func jsonDetail(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s is a JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n' || data[i] == ',') {
		i++
	}
	return i
}

// lineIndex holds the offsets where lines start.
type lineIndex []int

func newLineIndex(data []byte) lineIndex {
	idx := lineIndex{0}
	for i, b := range data {
		if b == '\n' {
			idx = append(idx, i+1)
		}
	}
	return idx
}

func (l lineIndex) at(offset int) int {
	lo, hi := 0, len(l)
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if l[mid] <= offset {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo + 1
}
