enum GatewayCryptoPlaceholder {}
