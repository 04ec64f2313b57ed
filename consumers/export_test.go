package consumers

// SetHandler routes an event type to h on this consumer only: tests inject
// handlers (one that panics, one that blocks) without a test-only branch
// in the code they test.
func (c *Consumer) SetHandler(source, typ string, h Handler) { c.handlers[source][typ] = h }

// Handler is the handler c routes an event type to, or nil.
func (c *Consumer) Handler(source, typ string) Handler { return c.handlers[source][typ] }
