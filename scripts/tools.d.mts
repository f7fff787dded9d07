export declare const TOOLS_DIR: string
export declare function cacheRoot(): string
export declare function toolNames(): string[]
export declare function toolCacheDir(name: string): string
export declare function ensureTool(name: string): string
export declare function toolBinary(name: string, binary?: string): string
