package stream

// CheckVersion exposes checkVersion to the tests.
var CheckVersion = checkVersion
