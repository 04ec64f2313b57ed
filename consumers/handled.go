package consumers

import "sort"

// HandledTypes lists the event types of a source that have a handler,
// sorted. Backfill asks the providers' Events APIs for these by default, so
// it fetches what syncd applies and not every event an account produces.
func HandledTypes(source string) []string {
	var types []string
	for t := range handlers()[source] {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}
