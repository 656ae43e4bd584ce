// Exporters (Garmin, Wahoo, FIT): see issue 3.
enum GatewayProvidersPlaceholder {}
