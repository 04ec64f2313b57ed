package legacy_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/syncd/syncd/legacy"
)

// person is a generated Clerk user, written out in either format.
type person struct {
	id, email, first, last string
	verified               bool
	digest, hasher, totp   string
	expert                 bool
}

func people(n int) []person {
	out := make([]person, n)
	for i := range out {
		p := person{
			id:       fmt.Sprintf("user_2Zx%06dQk", i),
			email:    fmt.Sprintf("person%d@example.com", i),
			first:    fmt.Sprintf("Pat%d", i),
			last:     "Doe",
			verified: i%3 != 0,
			expert:   i%10 == 0,
		}
		switch i % 4 {
		case 1, 3:
			p.digest, p.hasher = fmt.Sprintf("$2a$10$abcdefghijklmnopqrstuv%08dXYZ0123456789abcd", i), "bcrypt"
		case 2:
			p.digest, p.hasher = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "argon2id"
		}
		if i%5 == 0 {
			p.totp = fmt.Sprintf("TOTPSECRET%04dXX", i)
		}
		out[i] = p
	}
	return out
}

const clerkHeader = "id,first_name,last_name,username,primary_email_address,primary_phone_number,verified_email_addresses,unverified_email_addresses,verified_phone_numbers,unverified_phone_numbers,totp_secret,password_digest,password_hasher"

func csvOf(ps []person) string {
	var b strings.Builder
	b.WriteString(clerkHeader + "\n")
	for i, p := range ps {
		alt := fmt.Sprintf("alt%d@example.org", i)
		verified, unverified := "", p.email
		if p.verified {
			// Both list separators occur in real exports.
			if i%2 == 0 {
				verified, unverified = p.email+"|"+alt, ""
			} else {
				verified, unverified = `"`+alt+","+p.email+`"`, ""
			}
		}
		fmt.Fprintf(&b, "%s,%s,%s,,%s,,%s,%s,,,%s,%q,%s\n", p.id, p.first, p.last, p.email, verified, unverified, p.totp, p.digest, p.hasher)
	}
	return b.String()
}

func jsonOf(ps []person) string {
	type verification struct {
		Status   string `json:"status"`
		Strategy string `json:"strategy"`
	}
	type address struct {
		ID           string       `json:"id"`
		EmailAddress string       `json:"email_address"`
		Verification verification `json:"verification"`
	}
	var list []map[string]any
	for i, p := range ps {
		status := "unverified"
		if p.verified {
			status = "verified"
		}
		u := map[string]any{
			"id": p.id, "object": "user", "first_name": p.first, "last_name": p.last, "username": nil,
			"primary_email_address_id": fmt.Sprintf("idn_%d_p", i),
			"email_addresses": []address{
				{ID: fmt.Sprintf("idn_%d_a", i), EmailAddress: fmt.Sprintf("alt%d@example.org", i), Verification: verification{"verified", "email_code"}},
				{ID: fmt.Sprintf("idn_%d_p", i), EmailAddress: p.email, Verification: verification{status, "email_code"}},
			},
			"external_id": nil, "public_metadata": map[string]any{"plan": "free"}, "private_metadata": map[string]any{"note": "secret"},
			"created_at": 1700000000000 + i, "password_enabled": p.digest != "", "totp_enabled": p.totp != "",
		}
		if p.digest != "" {
			u["password_digest"], u["password_hasher"] = p.digest, p.hasher
		}
		list = append(list, u)
	}
	b, _ := json.MarshalIndent(list, "", "  ")
	return string(b)
}

func read(t *testing.T, text string, f legacy.Format) legacy.File {
	t.Helper()
	file, err := legacy.Read(strings.NewReader(text), f)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return file
}

func TestReadBothFormatsAlike(t *testing.T) {
	t.Parallel()
	ps := people(40)
	c, j := read(t, csvOf(ps), ""), read(t, jsonOf(ps), "")
	if c.Format != legacy.FormatCSV || j.Format != legacy.FormatJSON {
		t.Fatalf("detected %s and %s", c.Format, j.Format)
	}
	if len(c.Bad)+len(j.Bad) > 0 || len(c.Users) != 40 || len(j.Users) != 40 {
		t.Fatalf("csv %d users %v; json %d users %v", len(c.Users), c.Bad, len(j.Users), j.Bad)
	}
	for i := range c.Users {
		cu, ju := c.Users[i], j.Users[i]
		if cu.Line != i+2 {
			t.Errorf("csv user %d on line %d", i, cu.Line)
		}
		cu.Line, ju.Line = 0, 0
		if !reflect.DeepEqual(cu, ju) {
			t.Errorf("user %d: csv %+v, json %+v", i, cu, ju)
		}
		p := ps[i]
		if cu.Email != p.email || cu.EmailVerified != p.verified || cu.PasswordHasher != p.hasher || cu.FirstName != p.first {
			t.Errorf("user %d read as %+v, want %+v", i, cu, p)
		}
	}
	// JSON lines: each element starts where its "{" is.
	lines := strings.Split(jsonOf(ps), "\n")
	for _, u := range j.Users[:3] {
		start := 0
		for i, l := range lines {
			if l == "  {" {
				start = i + 1
			}
			if strings.Contains(l, `"id": "`+u.ClerkID+`"`) {
				break
			}
		}
		if u.Line != start {
			t.Errorf("%s reported on line %d, its object starts on line %d", u.ClerkID, u.Line, start)
		}
	}
}

func TestReadReportsBadRowsByLine(t *testing.T) {
	t.Parallel()
	csvText := clerkHeader + "\n" +
		"user_a,Ann,A,,ann@example.com,,ann@example.com,,,,,,\n" + // 2 ok
		"user_b,Bob,B,,,,,,,,,,\n" + // 3 no email
		"user_c,Cy,C,,cy@example.com,,\n" + // 4 too few fields
		"user_a,Ann,Again,,ann2@example.com,,,,,,,,\n" + // 5 duplicate id
		"user_d,Di,D,,not-an-email,,,,,,,,\n" + // 6 malformed email
		"user_e,Eve,E,,eve@example.com,,,,,,,,\n" + // 7 ok
		"user_f,Fay,F,,EVE@example.com,,,,,,,,\n" + // 8 duplicate email
		"user_g,\"Gil\nBert\",G,,gil@example.com,,,,,,,,\n" + // 9-10 ok, a quoted newline
		",Nobody,N,,nobody@example.com,,,,,,,,\n" // 11 no id
	f := read(t, csvText, legacy.FormatCSV)
	want := []struct {
		line   int
		reason string
	}{{3, legacy.ReasonNoEmail}, {4, legacy.ReasonMalformed}, {5, legacy.ReasonDuplicateID}, {6, legacy.ReasonMalformed}, {8, legacy.ReasonDuplicateEmail}, {11, legacy.ReasonNoID}}
	assertBad(t, f.Bad, want)
	if ids := idsOf(f.Users); !reflect.DeepEqual(ids, []string{"user_a", "user_e", "user_g"}) {
		t.Errorf("imported %v", ids)
	}
	if f.Users[2].Line != 9 || f.Users[2].FirstName != "Gil\nBert" {
		t.Errorf("user_g: %+v", f.Users[2])
	}

	jsonText := `[
  {"id": "user_a", "primary_email_address_id": "e1", "email_addresses": [{"id": "e1", "email_address": "a@example.com"}]},
  {"id": 42, "email_addresses": []},
  {"id": "user_b", "primary_email_address_id": "gone", "email_addresses": [{"id": "e2", "email_address": "b@example.com"}]},
  {"id": "user_c",
   "primary_email_address_id": "e3",
   "email_addresses": [{"id": "e3", "email_address": "c@example.com", "verification": {"status": "verified"}}]}
]`
	f = read(t, jsonText, "")
	assertBad(t, f.Bad, []struct {
		line   int
		reason string
	}{{3, legacy.ReasonMalformed}, {4, legacy.ReasonNoEmail}})
	if ids := idsOf(f.Users); !reflect.DeepEqual(ids, []string{"user_a", "user_c"}) || f.Users[1].Line != 5 || !f.Users[1].EmailVerified || f.Users[0].EmailVerified {
		t.Errorf("imported %+v", f.Users)
	}
	if !strings.Contains(f.Bad[0].String(), "line 3: malformed: id is a JSON number, want string") {
		t.Errorf("bad row says %q", f.Bad[0])
	}
}

func TestReadRefusesOtherFiles(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"name,email\nann,ann@example.com\n", `{"id": "user_a"}`, ""} {
		if _, err := legacy.Read(strings.NewReader(text), ""); err == nil || !strings.Contains(err.Error(), "not a Clerk export") {
			t.Errorf("%q: %v", text, err)
		}
	}
}

func assertBad(t *testing.T, got []legacy.BadRow, want []struct {
	line   int
	reason string
}) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("bad rows %v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].Line != w.line || got[i].Reason != w.reason {
			t.Errorf("bad row %d: %v, want line %d %s", i, got[i], w.line, w.reason)
		}
	}
}

func idsOf(us []legacy.User) []string {
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ClerkID)
	}
	return ids
}
