enum GatewayStorePlaceholder {}
