// Package testutil holds the helpers that the tests of several packages
// share, so that each is written once:
//
//   - skipping what this machine cannot run, with the reason
//     ([RequireRoot], [RequireFuse], [RequireMounts]);
//   - building a layer from a short description, as a directory in the
//     kernel's overlay format ([BuildDir]) or as a tarball in the OCI
//     format ([Tar]): one description, [Item], written out as a Go
//     literal or, for the plain cases, in the one-line notation of
//     [Spec];
//   - listing a tree for before/after checks ([TreeOf]).
//
// Tests share these helpers, not state: each test builds what it needs in
// its own temporary directory.
//
// It is imported only by tests (files ending in _test.go).
package testutil
