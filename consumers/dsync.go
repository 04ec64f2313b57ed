package consumers

// dsyncHandlers applies WorkOS Directory Sync events.
func dsyncHandlers() map[string]Handler {
	return map[string]Handler{}
}
