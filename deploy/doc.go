// Package deploy holds the production-like deployment example
// (compose.yaml: a three-node JetStream cluster, Postgres and two syncd
// replicas) and the tests that keep it and the Dockerfile valid where no
// Docker engine runs.
package deploy
