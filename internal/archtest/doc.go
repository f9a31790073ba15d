// Package archtest holds the tests that keep the architecture honest:
// dependencies point inward (readers and devices know nothing of MQTT,
// the store nothing of hardware, the rules no I/O at all), and every
// package says what it is for.
package archtest
