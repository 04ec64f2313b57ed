package legacy

// SetAfterStep makes the importer call f after each stored step.
func SetAfterStep(im *Importer, f func(clerkID, step string)) { im.afterStep = f }
