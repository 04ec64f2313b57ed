package main

import (
	"strings"
	"testing"
)

func TestBadProvisioningConfigExitsTwo(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("WORKOS_API_KEY", "sk_test_x")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"serve", "--provision", "sometimes"}, want: `--provision: provision mode "sometimes"`},
		{env: map[string]string{"SYNCD_PROVISION": "maybe"}, args: []string{"serve"}, want: `provision mode "maybe"`},
		{args: []string{"serve", "--provision-org-name", "{nick}'s"}, want: "unknown placeholder {nick}"},
		{args: []string{"serve", "--provision-owner-role", "big boss"}, want: `OwnerRole "big boss"`},
		{env: map[string]string{"WORKOS_API_URL": "ftp://workos"}, args: []string{"serve"}, want: "WORKOS_API_URL"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, stderr := runCmd(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tc.want)
			}
		})
	}
}
