package ssh

// SetTestHookAside sets what runs between a swap's two renames.
func SetTestHookAside(f func(target string)) { testHookAside = f }
