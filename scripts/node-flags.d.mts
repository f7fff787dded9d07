export const IMAGE_NODE_FLAGS: string[]
