enum GatewayConfigPlaceholder {}
