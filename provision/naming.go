package provision

import (
	"strings"
	"unicode/utf8"
)

// PersonalOrgExternalID is the external id of a user's personal
// organization in WorkOS. Derived from the user, so that anyone about to
// create it (a retry, another replica, the Clerk import) finds it first.
func PersonalOrgExternalID(workosUserID string) string { return "personal:" + workosUserID }

// maxOrgName bounds a rendered organization name.
const maxOrgName = 200

// OrgName renders the organization name template for a person. A missing
// first name is the email's local part, so the default template always
// names someone ("ana's Account").
func OrgName(template, firstName, lastName, email string) string {
	firstName, lastName = strings.TrimSpace(firstName), strings.TrimSpace(lastName)
	if firstName == "" {
		firstName, _, _ = strings.Cut(email, "@")
	}
	name := strings.TrimSpace(firstName + " " + lastName)
	out := strings.NewReplacer(
		"{first_name}", firstName,
		"{last_name}", lastName,
		"{name}", name,
		"{email}", email,
	).Replace(template)
	out = strings.TrimSpace(out)
	if len(out) > maxOrgName {
		n := maxOrgName
		for n > 0 && !utf8.RuneStart(out[n]) {
			n--
		}
		out = out[:n]
	}
	return out
}

// splitName splits a booking's guest name into first and last: the first
// word, and the rest.
func splitName(full string) (first, last string) {
	f := strings.Fields(full)
	if len(f) == 0 {
		return "", ""
	}
	return f[0], strings.Join(f[1:], " ")
}
