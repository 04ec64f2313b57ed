package consumers

// stripeHandlers applies Stripe events.
func stripeHandlers() map[string]Handler {
	return map[string]Handler{}
}
