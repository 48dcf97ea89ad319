package server

// registerPostgres is filled in when the PostgreSQL driver lands.
func registerPostgres() {}
