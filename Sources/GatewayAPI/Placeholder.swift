enum GatewayAPIPlaceholder {}
