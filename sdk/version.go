package sdk

// Version is this SDK's release, semantic versioning: its module is tagged
// sdk/v<Version> (sdk/README.md, "Versions"), and CHANGELOG.md says what
// each release changed for role authors. It is not ProtocolVersion: any
// SDK release speaking protocol 1 talks to any node speaking it.
const Version = "0.2.0"
