// The provider sandbox: see Sandbox.swift.
enum GatewaySandboxPlaceholder {}
