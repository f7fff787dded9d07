// Types for the parts of plan.mjs that TypeScript tests import.
export declare const REPO_ROOT: string
export declare const PLATFORMS: string[]
