// Package reliability holds the tests of the exporter's reliability and
// security promises: the fault matrix (every API × every fault the simulator
// can inject), a soak run, bad webhook input, secrets that must never show,
// access control, and kill -9 restarts during a storm of webhooks. The tests
// run the clients, collectors and trigger in-process against the simulator,
// or the built binary, and are part of `go test ./...`.
//
// Flags: -reliability.runs sets the number of kill/restart rounds (default 8,
// 2 with -short); -reliability.seed fixes the seed of their kill points.
package reliability
